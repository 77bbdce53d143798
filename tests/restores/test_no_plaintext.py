"""No plaintext on disk, ever: a restore keeps nothing decrypted in a file, not while it runs
and not after its worker was SIGKILLed; a reaper or the next worker kills the loaders a dead
worker left and removes its files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker

from backups import workdirs
from backups.envelope import ENVELOPE_MAGIC
from restores.artifacts import Progress, restore_job
from restores.models import Restore, RestorePhase, RestoreStatus
from restores.services import restore_request, restores_reap_stale
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import (
    MySQLEngine,
    PostgreSQLEngine,
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    table_checksums,
)
from tests.fixtures.worker import wait_for
from tests.restores.helpers import artifact_path, leftovers, run_restore_now

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SECRET_ROWS = 600_000
PGDMP = b"PGDMP"
# Open files not worth reading: libraries and the interpreter's own.
CODE = ("/usr", "/lib", sys.prefix, os.path.realpath(sys.prefix))
FINAL = (RestoreStatus.COMPLETED, RestoreStatus.FAILED)


# --- looking for plaintext -----------------------------------------------------------------


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (a loader in its own session included)."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            parents[int(proc.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, changed = {root}, True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _app_database() -> tuple[str, ...]:
    """The embedded profile's app database and its -wal/-shm/-journal files. Never opened
    here: closing any descriptor of a SQLite file drops every POSIX lock this process holds
    on it, so reading it beside the test's own connection would break SQLite's locking (a
    worker then never saw the next task). It holds the app's rows, not a restore's data."""
    if connection.vendor != "sqlite":
        return ()
    return (os.path.realpath(connection.settings_dict["NAME"]),)


class PlaintextScanner:
    """Reads, over and over, every file a restore could write: the test's temporary directory
    (STRONGBOX_TMP_DIR in it), the system one, and every regular file the worker's processes
    hold open (unlinked ones too, through /proc). Notes each file holding the marker, and each
    holding a pg_dump header (``PGDMP``) where only a restore of ours writes."""

    def __init__(self, marker: str, own_dir: Path) -> None:
        self.marker = marker.encode()
        self.own_dir = own_dir
        # The processes whose open files are read too (not, say, the S3 server's).
        self.pids: Callable[[], set[int]] = set
        # Files that hold the data by nature (a SQLite target and its scratch image).
        self.allowed: Callable[[str], bool] = lambda path: False
        self.found: list[str] = []
        self.passes = 0
        # Files of the system temporary directory untouched since the scanner started cannot
        # hold this test's marker (it is new): skipping them keeps a pass short on a busy
        # machine whose /tmp is full of other work, so passes come often during a restore.
        self.started = time.time() - 1
        self.not_read = (*CODE, *_app_database())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plaintext-scanner", daemon=True)

    def start(self) -> PlaintextScanner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scan_once()
            self._stop.wait(0.05)

    def _files(self):
        yield from (p for p in self.own_dir.rglob("*") if p.is_file())
        # The system temporary directory, but not other test runs' directories.
        for entry in Path(tempfile.gettempdir()).iterdir():
            if entry.name.startswith("pytest-of-"):
                continue
            if entry.is_file():
                yield from self._recent([entry])
            elif entry.is_dir():
                yield from self._recent(p for p in entry.rglob("*") if p.is_file())
        for pid in self.pids():
            try:
                entries = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in entries:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                # A memfd is memory, not a file on any disk: like a pipe's buffer it is gone
                # with the last process holding it (the post-data pg_restore reads the table
                # of contents from one, restores.loading._in_memory).
                if target.startswith("/memfd:"):
                    continue
                if target.startswith("/") and not target.startswith(self.not_read):
                    yield fd

    def _recent(self, paths):
        for path in paths:
            try:
                if path.stat().st_mtime >= self.started:
                    yield path
            except OSError:
                continue

    def _holds(self, path: Path) -> list[bytes]:
        """Which of the marker and the dump header the file holds (read in 4 MiB windows)."""
        watched = [self.marker, PGDMP]
        held = []
        overlap = max(len(w) for w in watched)
        tail = b""
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return []  # a FIFO or device: opening it could block
            with open(path, "rb") as handle:
                while piece := handle.read(4 << 20):
                    window = tail + piece
                    held += [w for w in watched if w in window and w not in held]
                    tail = window[-overlap:]
        except OSError:
            return []
        return held

    def scan_once(self) -> None:
        for path in self._files():
            if self.allowed(os.path.realpath(path)):
                continue
            for what in self._holds(path):
                ours = str(path).startswith((str(self.own_dir), "/proc/"))
                if what == self.marker or ours:
                    self.found.append(f"{path} ({os.path.realpath(path)}): {what!r}")
        self.passes += 1


# --- the databases -------------------------------------------------------------------------


def _fill_with_secrets(spec, marker: str, rows: int = SECRET_ROWS) -> None:
    fill_postgres(spec, rows=100)
    with PostgreSQLEngine().connect(spec) as conn:
        conn.execute(
            "CREATE TABLE secrets AS SELECT i AS id, %s || '-' || md5(i::text) AS payload"
            " FROM generate_series(1, %s) i",
            (marker, rows),
        )
        conn.execute("ALTER TABLE secrets ADD PRIMARY KEY (id)")


def _fingerprint(spec) -> tuple:
    with PostgreSQLEngine().connect(spec) as conn:
        secrets = conn.execute(
            "SELECT count(*), sum(hashtext(payload)::bigint) FROM secrets"
        ).fetchone()
    return secrets, table_checksums(spec)


def _loaders_of(scratch_name: str) -> list[int]:
    """pg_restore processes loading into ``scratch_name`` (not the quick --schema-only scan)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or not argv[0].endswith(b"pg_restore"):
            continue
        if b"--schema-only" not in argv and any(scratch_name.encode() in a for a in argv):
            pids.append(int(proc.name))
    return pids


def _queue_state(queue: str) -> str:
    """What the broker holds and who locks the app database: for a task never picked up."""
    broker = get_broker(queue)
    now = timezone.now()
    rows = broker.queue_size()
    held = []
    if connection.vendor == "sqlite":
        inode = os.stat(connection.settings_dict["NAME"]).st_ino
        held = [
            line for line in Path("/proc/locks").read_text().splitlines() if f":{inode} " in line
        ]
    threads = [t.name for t in threading.enumerate()]
    return (
        f"now {now.isoformat()}, {rows} queued in {queue}, app database locks {held}, "
        f"threads {threads}"
    )


def _until_final(restore: Restore, worker, timeout: float) -> Restore:
    return wait_for(
        lambda: (r := Restore.objects.get(pk=restore.pk)).status in FINAL and r,
        timeout=timeout,
        message=lambda: f"restore {restore.id} to end; worker log:\n{worker.output()[-3000:]}",
    )


# --- the tests -----------------------------------------------------------------------------


def test_an_encrypted_restore_never_puts_plaintext_on_disk_even_when_its_worker_is_killed(
    project, environment, destination, make_postgres_database, start_worker, tmp_path
):
    marker = f"sbx-secret-{uuid.uuid4().hex}"
    source = make_postgres_database()
    _fill_with_secrets(source, marker)
    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database_for(environment, source, options={"restore_jobs": 2}),
    )
    assert backup.encrypted and backup.status == "completed", backup.message
    artifact = artifact_path(backup).read_bytes()
    assert artifact.startswith(ENVELOPE_MAGIC) and marker.encode() not in artifact
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    target = make_postgres_database()
    database_for(production, target, options={"restore_jobs": 2})

    scanner = PlaintextScanner(marker, tmp_path)
    planted = Path(settings.STRONGBOX_TMP_DIR) / "planted"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(b"x" * 5_000_000 + PGDMP + marker.encode())
    scanner.scan_once()
    # The scanner sees both in a file like the one the issue found.
    assert len(scanner.found) == 2 and all("planted" in found for found in scanner.found)
    planted.unlink()
    scanner.found.clear()

    # Its own queue: the restores below are this worker's alone, whatever else consumes the
    # run's queue (full runs once lost the second restore's task to another consumer).
    worker = start_worker(own_queue=True)
    worker_pid = worker.process.pid
    # Its processes, and its loaders once they are orphans of a killed worker.
    scanner.pids = lambda: _descendants(worker_pid) | set(_loaders_of(target.name))
    scanner.start()
    try:
        # While it runs: nothing decrypted in any file.
        first = restore_request(
            backup=backup, target_type="other", target_environment=str(production.id), enqueue=False
        )
        worker.enqueue("restores.tasks.run_restore", str(first.id))
        first = _until_final(first, worker, timeout=300)
        assert first.status == RestoreStatus.COMPLETED, first.message
        assert _fingerprint(target) == _fingerprint(source)
        assert scanner.found == []

        # Killed half-way through the load: still nothing, and the target as it was.
        with PostgreSQLEngine().connect(target) as conn:
            conn.execute("DELETE FROM secrets WHERE id > 1000")
        before = _fingerprint(target)
        second = restore_request(
            backup=backup,
            target_type="other",
            target_environment=str(production.id),
            take_safety_backup=False,
            enqueue=False,
        )
        worker.enqueue("restores.tasks.run_restore", str(second.id))
        scratch_name = f"{target.name}_sbx_restore_{second.id.hex[:8]}"
        wait_for(
            lambda: (
                _loaders_of(scratch_name)
                and Restore.objects.get(pk=second.pk).bytes_done > backup.size // 10
            ),
            timeout=120,
            message=lambda: (
                f"the load to run; {_queue_state(worker.queue)}; "
                f"worker log:\n{worker.output()[-3000:]}"
            ),
        )
        job = workdirs.job_path(settings.STRONGBOX_TMP_DIR, restore_job(second.id))
        assert job.is_dir() and (job.stat().st_mode & 0o777) == 0o700
        worker.kill()  # SIGKILL to the worker's process group: its loaders have their own
        worker.stop()
        assert Restore.objects.get(pk=second.pk).status == RestoreStatus.IN_PROGRESS
        assert os.listdir(job / "loaders")
        scanner.scan_once()
    finally:
        scanner.stop()

    assert scanner.found == []
    assert scanner.passes > 5  # it kept reading while the restores ran (fewer on a loaded box)
    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    assert [r.pk for r in restores_reap_stale(now=later)] == [second.pk]

    reaped = Restore.objects.get(pk=second.pk)
    assert reaped.status == RestoreStatus.FAILED and reaped.phase == RestorePhase.RESTORE
    wait_for(lambda: not _loaders_of(scratch_name), timeout=30, message="the loaders to end")
    assert not job.exists()
    assert _fingerprint(target) == before
    assert leftovers(target) == []
    assert [p.name for p in Path(settings.STRONGBOX_TMP_DIR).iterdir()] == []


def test_an_unencrypted_backup_downloaded_from_s3_waits_encrypted_and_restores(
    organisation,
    environment,
    make_postgres_database,
    s3_server,
    s3_bucket,
    tmp_path,
    settings,
    monkeypatch,
):
    from destinations.models import DestinationKind
    from tests.fixtures.s3 import s3_destination_config

    settings.STRONGBOX_MASTER_KEY = ""  # the artifact holds the rows as they are (compressed)
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    s3 = factories.DestinationFactory(
        organisation=organisation, kind=DestinationKind.S3, config=config, secrets=secrets
    )
    marker = f"sbx-secret-{uuid.uuid4().hex}"
    spec = make_postgres_database()
    _fill_with_secrets(spec, marker, rows=200_000)
    original = _fingerprint(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=[s3.id]
    )
    assert backup.status == "completed" and not backup.encrypted, backup.message
    with PostgreSQLEngine().connect(spec) as conn:
        conn.execute("DELETE FROM secrets WHERE id % 2 = 0")

    scanner = PlaintextScanner(marker, tmp_path)
    # This process runs the restore; the S3 server below it keeps the artifact as it likes.
    scanner.pids = lambda: _descendants(os.getpid()) - _descendants(s3_server.process.pid)
    # Besides the scanner's own passes, one in step with the restore at every eighth of the
    # artifact read, so a loaded machine cannot make the passes miss the restore.
    add, step, seen = Progress.add, max(1, backup.size // 8), []

    def add_and_scan(progress, n: int) -> None:
        add(progress, n)
        if progress.bytes_done // step > len(seen):
            seen.append(progress.bytes_done)
            scanner.scan_once()

    monkeypatch.setattr(Progress, "add", add_and_scan)
    scanner.start()
    try:
        restore = run_restore_now(backup=backup, target_type="same", take_safety_backup=False)
    finally:
        scanner.stop()

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert restore.phases[0]["copy"] == s3.name
    assert _fingerprint(spec) == original
    assert scanner.found == [] and len(seen) >= 4 and scanner.passes > 3
    assert [p.name for p in Path(settings.STRONGBOX_TMP_DIR).iterdir()] == []


def _fill_other_with_secrets(spec, marker: str, rows: int = 20_000) -> None:
    fill = fill_sqlite if spec.engine == "sqlite" else fill_mariadb
    fill(spec, rows=50)
    values = [(i, f"{marker}-{uuid.uuid4().hex}") for i in range(1, rows + 1)]
    if spec.engine == "sqlite":
        with contextlib.closing(sqlite3.connect(spec.name)) as conn, conn:
            conn.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, payload TEXT)")
            conn.executemany("INSERT INTO secrets VALUES (?, ?)", values)
        return
    conn = MySQLEngine(spec.engine).connect(spec)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE secrets (id INT PRIMARY KEY, payload TEXT)")
            cur.executemany("INSERT INTO secrets VALUES (%s, %s)", values)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ["mariadb", "sqlite"])
def test_mariadb_and_sqlite_restores_keep_nothing_decrypted_beside_their_target(
    engine, environment, destination, request, tmp_path, monkeypatch
):
    spec = request.getfixturevalue(f"make_{engine}_database")()
    marker = f"sbx-secret-{uuid.uuid4().hex}"
    _fill_other_with_secrets(spec, marker)
    original = table_checksums(spec, tables=("customers", "secrets"))
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == "completed" and backup.encrypted, backup.message
    if engine == "sqlite":
        with contextlib.closing(sqlite3.connect(spec.name)) as conn, conn:
            conn.execute("DELETE FROM secrets WHERE id > 10")
    else:
        conn = MySQLEngine(spec.engine).connect(spec)
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM secrets WHERE id > 10")
            conn.commit()
        finally:
            conn.close()

    scanner = PlaintextScanner(marker, tmp_path)
    scanner.pids = lambda: _descendants(os.getpid())
    if engine == "sqlite":
        # The target, its scratch image beside it and its journal hold the rows: the restore.
        leaf = Path(spec.name).name
        scanner.allowed = lambda path: Path(path).name.lstrip(".").startswith(leaf)
    # Scan in step with the load (it is quick): at every 16 KiB of the artifact read.
    add = Progress.add
    seen = []

    def add_and_scan(progress, n: int) -> None:
        add(progress, n)
        if progress.bytes_done // (16 << 10) > len(seen):
            seen.append(progress.bytes_done)
            scanner.scan_once()

    monkeypatch.setattr(Progress, "add", add_and_scan)

    restore = run_restore_now(backup=backup, target_type="same", take_safety_backup=False)
    scanner.scan_once()

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(spec, tables=("customers", "secrets")) == original
    assert scanner.found == [] and scanner.passes > 2
    assert [p.name for p in Path(settings.STRONGBOX_TMP_DIR).iterdir()] == []


def _job_of_a_dead_worker(name: str) -> tuple[Path, subprocess.Popen]:
    """A job directory as a SIGKILLed worker leaves it: its owner gone, a loader still running
    in its own process group, an option file with a password."""
    tmp = Path(settings.STRONGBOX_TMP_DIR)
    tmp.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()
    loader = subprocess.Popen(["sleep", "300"], start_new_session=True)
    ticks = workdirs.start_ticks(loader.pid)
    job = workdirs.job_path(tmp, name)
    (job / "loaders").mkdir(parents=True, mode=0o700)
    (job / "owner").write_text(f"{host} {gone.pid} 1")
    (job / "loaders" / str(loader.pid)).write_text(f"{host} {loader.pid} {ticks}")
    (job / "strongbox-my-x.cnf").write_text("[client]\npassword=secret\n")
    return job, loader


@pytest.fixture
def stop_loaders():
    loaders: list[subprocess.Popen] = []
    yield loaders.append
    for loader in loaders:
        if loader.poll() is None:
            loader.kill()
        loader.wait()


def test_the_reaper_kills_the_loaders_of_a_restore_it_fails_and_removes_its_files(
    environment, destination, sqlite_spec, stop_loaders
):
    fill_sqlite(sqlite_spec, rows=20)
    database = database_for(environment, sqlite_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    restore = restore_request(backup=backup, target_type="same", enqueue=False)
    old = timezone.now() - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    Restore.objects.filter(pk=restore.pk).update(
        status=RestoreStatus.IN_PROGRESS, started_at=old, heartbeat_at=old, phase="RESTORE"
    )
    job, loader = _job_of_a_dead_worker(restore_job(restore.id))
    stop_loaders(loader)
    other_job, other_loader = _job_of_a_dead_worker(f"restore-{uuid.uuid4().hex}")
    stop_loaders(other_loader)

    assert [r.pk for r in restores_reap_stale()] == [restore.pk]

    assert loader.wait(timeout=10) == -signal.SIGKILL
    assert not job.exists()
    # Another restore's leftovers are the next worker's to judge, not this reaper's.
    assert other_loader.poll() is None and other_job.exists()


def test_a_new_worker_kills_the_loaders_and_removes_the_files_a_killed_worker_left(
    start_worker, stop_loaders
):
    tmp = Path(settings.STRONGBOX_TMP_DIR)
    dead, loader = _job_of_a_dead_worker(f"restore-{uuid.uuid4().hex}")
    stop_loaders(loader)
    # A plaintext spool of an older version, and the job of a worker that still runs.
    old_spool = tmp / "strongbox-restore-abc.pgdump"
    old_spool.write_bytes(PGDMP + b"rows")
    an_hour_ago = time.time() - 3600
    os.utime(old_spool, (an_hour_ago, an_hour_ago))
    running = workdirs.create(tmp, f"restore-{uuid.uuid4().hex}")
    try:
        worker = start_worker()
        wait_for(
            lambda: loader.poll() is not None,
            timeout=60,
            message=f"the loader to be killed; worker log:\n{worker.output()[-3000:]}",
        )
        assert loader.returncode == -signal.SIGKILL
        wait_for(lambda: not dead.exists(), timeout=10, message="the dead job's directory to go")
        assert not old_spool.exists()
        assert running.is_dir()
    finally:
        workdirs.discard(running)
