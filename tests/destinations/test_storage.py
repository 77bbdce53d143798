"""Artifact I/O on real destinations: a local directory and an S3-protocol server."""

import os
import tracemalloc
from pathlib import Path

import pytest

from destinations.backends import DestinationBackends, backend_for
from destinations.backends.local import LocalBackend
from destinations.models import Destination
from destinations.storage import (
    ArtifactMissing,
    artifact_size,
    artifact_sizes,
    delete_artifact,
    discard_partial_artifacts,
    open_artifact_stream,
    open_sink,
)
from tests import factories
from tests.fixtures.s3 import s3_destination_config

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024


@pytest.fixture
def s3_destination(organisation, s3_server, s3_bucket):
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    return factories.DestinationFactory(
        organisation=organisation, name="S3", kind="s3", config=config, secrets=secrets
    )


def test_a_local_copy_appears_only_when_committed(destination, settings):
    sink = open_sink(backend_for(destination), "org/p/e/database/x.pgdump.zst")
    sink.write(b"hello ")
    final = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) / "org/p/e/database/x.pgdump.zst"
    assert not final.exists()
    sink.write(b"world")
    sink.commit()
    assert final.read_bytes() == b"hello world"
    assert artifact_size(backend_for(destination), "org/p/e/database/x.pgdump.zst") == 11


def test_an_aborted_local_copy_leaves_nothing(destination, settings):
    sink = open_sink(backend_for(destination), "a/b.zst")
    sink.write(b"partial")
    sink.abort()
    root = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_a_local_copy_never_overwrites_an_existing_artifact(destination):
    first = open_sink(backend_for(destination), "k.zst")
    first.write(b"one")
    first.commit()
    second = open_sink(backend_for(destination), "k.zst")
    second.write(b"two")
    with pytest.raises(FileExistsError):
        second.commit()
    with open_artifact_stream(backend_for(destination), "k.zst") as stream:
        assert stream.read() == b"one"


def test_leftovers_of_an_interrupted_local_upload_are_discarded(destination, settings):
    sink = open_sink(backend_for(destination), "x/y.zst")
    sink.write(b"half")  # the worker dies here: no commit, no abort
    assert discard_partial_artifacts(backend_for(destination), "x/y.zst") == 1
    root = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)
    assert [p for p in root.rglob("*") if p.is_file() and p.stat().st_size] == []


def test_the_backends_of_one_operation_build_each_destinations_storage_once(
    destination, monkeypatch
):
    built = []
    build = LocalBackend.storage
    monkeypatch.setattr(LocalBackend, "storage", lambda self: built.append(self) or build(self))
    backends = DestinationBackends()
    same_row_read_again = Destination.objects.get(pk=destination.pk)

    for key in ("a.zst", "b.zst", "c.zst"):
        sink = open_sink(backends[destination], key)
        sink.write(b"x")
        sink.commit()
        assert artifact_size(backends[same_row_read_again], key) == 1
        delete_artifact(backends[destination], key)

    assert len(built) == 1
    assert artifact_size(DestinationBackends()[destination], "a.zst") is None
    assert len(built) == 2  # a new operation builds its own


@pytest.mark.s3
def test_a_large_s3_upload_streams_in_multipart_parts_in_bounded_memory(
    s3_destination, s3_server, s3_bucket
):
    chunk = os.urandom(MiB)
    total = 120
    tracemalloc.start()
    try:
        sink = open_sink(backend_for(s3_destination), "org/p/e/database/big.pgdump.zst")
        for _ in range(total):
            sink.write(chunk)
        sink.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    head = s3_server.client().head_object(
        Bucket=s3_bucket, Key="backups/org/p/e/database/big.pgdump.zst"
    )
    assert head["ContentLength"] == total * MiB
    # A multipart ETag ends with the number of parts: 120 MiB in 16 MiB parts is 8 parts.
    assert head["ETag"].strip('"').endswith("-8")
    assert peak < 80 * MiB, f"peak traced memory {peak / MiB:.0f} MiB"


@pytest.mark.s3
def test_an_aborted_s3_upload_leaves_no_object_and_no_pending_parts(
    s3_destination, s3_server, s3_bucket
):
    sink = open_sink(backend_for(s3_destination), "a/b.zst")
    for _ in range(40):
        sink.write(os.urandom(MiB))
    sink.abort()
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


@pytest.mark.s3
def test_s3_reads_stream_and_deletes_remove(s3_destination):
    sink = open_sink(backend_for(s3_destination), "r.zst")
    sink.write(b"payload")
    sink.commit()
    with open_artifact_stream(backend_for(s3_destination), "r.zst") as stream:
        assert stream.read() == b"payload"
    delete_artifact(backend_for(s3_destination), "r.zst")
    assert artifact_size(backend_for(s3_destination), "r.zst") is None
    with pytest.raises(ArtifactMissing):
        open_artifact_stream(backend_for(s3_destination), "r.zst")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_listing_gives_each_artifact_of_a_folder_with_its_size_and_nothing_below(
    kind, destination, s3_destination
):
    backend = backend_for(destination if kind == "local" else s3_destination)
    for key, size in {
        "org/p/e/wal/db/000000010000000000000001.zst": 10,
        "org/p/e/wal/db/000000010000000000000002.zst": 20,
        "org/p/e/wal/db/sub/other.zst": 5,
        "org/p/e/wal/dbx/000000010000000000000001.zst": 7,
    }.items():
        sink = open_sink(backend, key, name="t")
        sink.write(b"x" * size)
        sink.commit()
    assert artifact_sizes(backend, "org/p/e/wal/db") == {
        "org/p/e/wal/db/000000010000000000000001.zst": 10,
        "org/p/e/wal/db/000000010000000000000002.zst": 20,
    }
    assert artifact_sizes(backend, "org/p/e/wal/none") == {}
