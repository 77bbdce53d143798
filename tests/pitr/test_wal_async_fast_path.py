"""The async archive_command's own decisions (pitr/wal_async.py) and the segment header
(pitr/wal_header.py), without a cluster: which answers it gives from the spool, and which
files it refuses to take for the segment their name says."""

from __future__ import annotations

import os
import struct

import pytest

from pitr import wal_async
from pitr.archive import WalArchiveFailed, wal_archive
from pitr.wal_header import BadSegmentHeader, parse_segment_header
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path

NAME = "000000010000000000000007"
SEGMENT = 16 << 20


def segment_bytes(number: int, *, timeline: int = 1, size: int = SEGMENT) -> bytes:
    header = struct.pack("<HHIQI4xQII", 0xD110, 0x0002, timeline, number * size, 0, 42, size, 8192)
    return header + bytes(size - len(header))


def test_the_header_gives_the_segment_its_cluster_and_size():
    header = parse_segment_header(segment_bytes(7)[:40])
    assert (header.server_major, header.segment_number, header.system_identifier) == (15, 7, 42)
    for bad in (b"\x00" * 40, b"\x10\xd1", segment_bytes(7)[:2] + b"\x00\x00" + bytes(36)):
        with pytest.raises(BadSegmentHeader):
            parse_segment_header(bad)


@pytest.fixture
def pg_database(environment):
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="A local disk",
        config={"path": str(tenant_path(DEFAULT_SLUG, "local"))},
        is_default=True,
    )
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


def test_a_recycled_file_holding_another_segment_is_refused(pg_database, tmp_path):
    recycled = tmp_path / NAME
    recycled.write_bytes(segment_bytes(3))  # what segment 3 left in the file PostgreSQL reused
    with pytest.raises(WalArchiveFailed, match="not the segment its name says"):
        wal_archive(database=pg_database, path=recycled, name=NAME)
    genuine = tmp_path / "genuine" / NAME
    genuine.parent.mkdir()
    genuine.write_bytes(segment_bytes(7))
    assert wal_archive(database=pg_database, path=genuine, name=NAME).segment.segment_number == 7


def test_a_64_mib_segment_is_numbered_by_its_own_header(pg_database, tmp_path):
    path = tmp_path / "000000010000000000000002"
    path.write_bytes(segment_bytes(2, size=64 << 20))
    segment = wal_archive(database=pg_database, path=path, name=path.name).segment
    assert segment.segment_number == 2 and segment.size == 64 << 20


def test_an_ok_status_answers_only_for_the_file_that_was_read(tmp_path, monkeypatch):
    monkeypatch.setenv("STRONGBOX_WAL_SPOOL_DIR", str(tmp_path / "spool"))
    spool = wal_async.database_spool("db1")
    wal = tmp_path / NAME
    wal.write_bytes(b"segment")
    identity = wal_async.file_identity(os.stat(wal))
    assert not wal_async.ok_matches(spool, NAME, str(wal))  # no status
    wal_async.write_ok(spool, NAME, checksum="0" * 64, identity=identity)
    assert wal_async.ok_matches(spool, NAME, str(wal))  # same inode, size and mtime
    copy = tmp_path / "copy"
    copy.write_bytes(b"segment")
    assert not wal_async.ok_matches(spool, NAME, str(copy))  # another file, another checksum
    wal_async.write_ok(spool, NAME, checksum=wal_async._sha256(str(copy)), identity="")
    assert wal_async.ok_matches(spool, NAME, str(copy))  # no identity: the checksum decides
    assert wal_async.archive("db1", str(copy), NAME) == 0
    assert not os.path.exists(wal_async.ok_path(spool, NAME))  # consumed


def test_the_fast_path_takes_only_its_own_arguments():
    assert wal_async.parse_args(["--database", "d", "--async", "pg_wal/x", NAME]) == (
        "d",
        "pg_wal/x",
        NAME,
    )
    assert wal_async.parse_args(["--database", "d", "pg_wal/x", NAME]) is None  # not async
    assert wal_async.parse_args(["--database", "../d", "--async", "p", NAME]) is None
    assert wal_async.parse_args(["--database", "d", "--async", "p", "../x"]) is None
    assert wal_async.parse_args(["--database", "d", "--async", "-v", "2", "p", NAME]) is None


def test_an_async_command_for_a_missing_file_fails_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STRONGBOX_WAL_SPOOL_DIR", str(tmp_path / "spool"))
    assert wal_async.archive("db1", str(tmp_path / NAME), NAME, timeout=5) == 1
    assert "no file" in capsys.readouterr().err
