"""S3 calls have connect and read timeouts and a bounded number of attempts.

Against real servers on loopback: a "black hole" that accepts TCP connections and never
answers, a port where nothing listens (the kernel refuses), and moto's S3 server behind a
proxy that stops forwarding in the middle of a multipart upload. The connection test
answers within 15 s, a backup fails within 60 s with a message that says what the endpoint
did, and no copy is marked stored. With botocore's defaults the same endpoint held the
test for 60 s and a backup for 181 s.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import pytest

from backups.models import BackupStatus, CopyStatus
from backups.services import backups_discard_failed_uploads
from destinations.backends.s3 import S3Timeouts
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import ConnectionSpec, fill_sqlite
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, free_port
from tests.fixtures.tenants import unique_tenant_dir
from tests.fixtures.worker import wait_for
from tests.reliability.helpers import (
    assert_restores_the_blobs,
    make_big_sqlite,
    pending_uploads,
    stored_objects,
)
from tests.reliability.proxy import ThrottledProxy

pytestmark = [pytest.mark.django_db, pytest.mark.s3]

TEST_BOUND_SECONDS = 15
BACKUP_BOUND_SECONDS = 60


class BlackHole:
    """Accepts every connection and reads what is sent, never answering a byte."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._connections: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._swallow, args=(connection,), daemon=True).start()

    @staticmethod
    def _swallow(connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while connection.recv(64 * 1024):
                pass

    @property
    def accepted(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.close()


@pytest.fixture
def black_hole():
    server = BlackHole()
    yield server
    server.close()


def _s3_destination(
    organisation, endpoint: str, bucket: str = "silent-bucket", name: str = "Offsite", **config
):
    return factories.DestinationFactory(
        organisation=organisation,
        name=name,
        kind="s3",
        config={"bucket": bucket, "region": "us-east-1", "endpoint_url": endpoint, **config},
        secrets={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    )


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _connection_test(client_for, organisation, destination):
    response = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test")
    assert response.status_code == 200
    return response.json()


def _backup_to(environment, destination, database):
    return run_backup_now(
        environment=environment,
        kind="database",
        database=database,
        destination_ids=[str(destination.id)],
    )


@pytest.fixture
def small_sqlite(environment, sqlite_spec):
    fill_sqlite(sqlite_spec, rows=50)
    return database_for(environment, sqlite_spec)


def test_the_defaults_bound_each_attempt_and_retry_a_backup_three_times():
    timeouts = S3Timeouts.configured()
    assert (timeouts.connect, timeouts.read, timeouts.attempts) == (2, 4, 3)
    assert S3Timeouts.for_connection_test().attempts == 1
    config = timeouts.client_config()
    assert (config.connect_timeout, config.read_timeout) == (2, 4)
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_the_settings_change_the_timeouts(settings):
    settings.STRONGBOX_S3_CONNECT_TIMEOUT = 7
    settings.STRONGBOX_S3_READ_TIMEOUT = 30
    settings.STRONGBOX_S3_MAX_ATTEMPTS = 5
    assert S3Timeouts.configured() == S3Timeouts(connect=7, read=30, attempts=5)
    assert S3Timeouts.for_connection_test() == S3Timeouts(connect=7, read=30, attempts=1)


def test_the_connection_test_of_a_silent_or_refusing_endpoint_answers_within_15_seconds(
    client_for, organisation, black_hole, caplog
):
    silent = _s3_destination(organisation, black_hole.endpoint)
    refusing = _s3_destination(organisation, f"http://127.0.0.1:{free_port()}", name="Closed")
    caplog.set_level(logging.INFO, logger="destinations.services")

    answers = {}
    for name, destination in (("silent", silent), ("refusing", refusing)):
        answers[name], seconds = _timed(
            lambda d=destination: _connection_test(client_for, organisation, d)
        )
        print(f"connection test, {name} endpoint: {seconds:.2f} s")
        assert seconds < TEST_BOUND_SECONDS

    assert black_hole.accepted >= 1
    # The tenant is told the same, in about the same time, whatever the endpoint did: the
    # test must not map which ports of a network are open (the host policy's concern).
    assert [(a["ok"], a["step"], a["message"]) for a in answers.values()] == [
        (False, "connect", "connect failed: not reachable")
    ] * 2
    durations = [a["durationMs"] for a in answers.values()]
    wait_ms = S3Timeouts.for_connection_test().longest_unanswered_call() * 1000
    assert all(wait_ms <= d < wait_ms + 2000 for d in durations), durations
    # The operator's log says what happened.
    assert (
        f"S3 endpoint {black_hole.endpoint} accepted the connection but did not answer "
        "within 4 s (tried once)."
    ) in caplog.text
    assert f"S3 endpoint {refusing.config['endpoint_url']} refused the connection" in caplog.text


def test_a_backup_to_an_endpoint_that_accepts_and_never_answers_fails_within_60_seconds(
    environment, organisation, black_hole, small_sqlite
):
    destination = _s3_destination(organisation, black_hole.endpoint)

    backup, seconds = _timed(lambda: _backup_to(environment, destination, small_sqlite))
    print(f"backup to a silent endpoint: failed after {seconds:.2f} s")

    assert seconds < BACKUP_BOUND_SECONDS
    assert backup.status == BackupStatus.FAILED
    said = (
        f"S3 endpoint {black_hole.endpoint} accepted the connection but did not answer "
        "within 4 s (tried 3 times)."
    )
    assert said in backup.message and "Offsite" in backup.message, backup.message
    copy = backup.copies.get()
    assert copy.status == CopyStatus.FAILED and not copy.file_exists
    assert said in copy.error


def test_a_backup_to_an_endpoint_that_refuses_fails_at_once_saying_so(
    environment, organisation, small_sqlite
):
    endpoint = f"http://127.0.0.1:{free_port()}"
    destination = _s3_destination(organisation, endpoint)

    backup, seconds = _timed(lambda: _backup_to(environment, destination, small_sqlite))
    print(f"backup to a refusing endpoint: failed after {seconds:.2f} s")

    assert seconds < BACKUP_BOUND_SECONDS
    assert backup.status == BackupStatus.FAILED
    assert f"S3 endpoint {endpoint} refused the connection (tried 3 times)." in backup.message
    assert backup.copies.get().status == CopyStatus.FAILED


def test_a_multipart_upload_that_stalls_mid_way_fails_the_backup_within_60_seconds(
    environment, organisation, s3_server, s3_bucket, tmp_path
):
    """The proxy stops forwarding, in both directions, once the first part is stored: the
    connections stay open and the store never answers again. Once it forwards again, the
    housekeeping removes the unfinished upload and the next backup is stored whole."""
    proxy = ThrottledProxy(s3_server.port, bytes_per_second=2 * 1024 * 1024).start()
    try:
        destination = _s3_destination(
            organisation, proxy.endpoint, bucket=s3_bucket, prefix="backups", part_size_mb="5"
        )
        path = unique_tenant_dir(organisation) / "big.sqlite3"
        make_big_sqlite(path, 16)
        database = database_for(environment, ConnectionSpec(engine="sqlite", name=str(path)))
        stalled_at: list[float] = []

        def stall_after_the_first_part():
            def first_part_stored():
                client = s3_server.client()
                return any(
                    client.list_parts(Bucket=s3_bucket, Key=u["Key"], UploadId=u["UploadId"]).get(
                        "Parts"
                    )
                    for u in pending_uploads(s3_server, s3_bucket)
                )

            wait_for(first_part_stored, timeout=60, interval=0.05, message="a first part")
            proxy.pause()
            stalled_at.append(time.monotonic())

        watcher = threading.Thread(target=stall_after_the_first_part, daemon=True)
        watcher.start()
        backup = _backup_to(environment, destination, database)
        ended_at = time.monotonic()
        watcher.join(timeout=5)

        assert stalled_at, "the upload ended before its first part was seen"
        seconds = ended_at - stalled_at[0]
        print(f"stalled multipart upload: the backup failed {seconds:.2f} s after the stall")
        assert seconds < BACKUP_BOUND_SECONDS
        assert backup.status == BackupStatus.FAILED
        assert (
            f"S3 endpoint {proxy.endpoint} accepted the connection but did not answer within "
            "4 s (tried 3 times)."
        ) in backup.message, backup.message
        assert backup.copies.get().status == CopyStatus.FAILED
        assert stored_objects(s3_server, s3_bucket) == []

        proxy.resume()
        backups_discard_failed_uploads()
        assert pending_uploads(s3_server, s3_bucket) == []

        # The same destination, answering again, stores a backup that restores whole.
        stored = _backup_to(environment, destination, database)
        assert stored.status == BackupStatus.COMPLETED, stored.message
        assert_restores_the_blobs(stored, tmp_path)
    finally:
        proxy.resume()
        proxy.stop()
