"""Load test: 50 concurrent backups across 4 worker processes, followed by 100 SSE clients.

Everything runs on loopback and stops by itself (``--timeout``, default 600 s):

- a throwaway app database ``sbx_load_<id>`` on the local PostgreSQL and a Redis server of
  its own on a free port (the production profile: ``config.settings.production``);
- 50 small source databases, half SQLite files and half PostgreSQL databases;
- 4 worker processes: 4 ``manage.py qcluster`` with ``STRONGBOX_WORKERS=1`` each, as a
  fleet scales (one cluster per machine or container);
- uvicorn (ASGI) serving the API; 2 SSE clients per backup on
  ``GET /api/backups/{id}/progress``, opened before the work is enqueued.

It checks that every backup completes and verifies (``backup_verify`` re-reads each
artifact), that every SSE client receives its final event, and that no worker process's
peak RSS (``VmHWM`` in ``/proc/<pid>/status``) exceeds the bound. Then it drops the
databases, stops every process it started and removes its directory.

Run: .venv/bin/python bench/load_test.py [--backups 50] [--workers 4] [--clients-per-backup 2]
     [--rss-bound-mib 256] [--timeout 600]
Exit status 0 when every check passed.

A run on a 2-vCPU machine (PostgreSQL 15 and the workers on the same host, 2,000 rows per
table): 50/50 completed and verified in 12.7 s (3.95 backups/s); 100/100 SSE clients got
their final event, completion to final event p50 371 ms, p95 741 ms (the stream polls every
0.5 s); each worker's largest process peaked at 102-104 MiB; the web process held at most 14
app database connections for 100 open streams. With the shared poller (one query per kind
per tick for every open stream): 50/50 in 3.8 s, p50 314 ms, p95 522 ms, and the web
process never showed an open app database connection in the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432"
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- processes -------------------------------------------------------------------------------


class Processes:
    """Every child this script starts, each in its own process group, stopped at the end."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.children.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for _, process in self.children:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in self.children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat parent ids)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Peak RSS per process of each worker tree, sampled twice a second (VmHWM is itself a
    peak, so a sample late in a process's life still sees its maximum)."""

    def __init__(self, roots: dict[str, int], app_db: str):
        super().__init__(daemon=True)
        self.roots = roots
        self.app_db = app_db
        self.peaks: dict[str, dict[int, int]] = {name: {} for name in roots}
        self.connections: dict[str, int] = {}
        self.stopped = threading.Event()

    def sample(self) -> None:
        import psycopg

        for name, root in self.roots.items():
            for pid in descendants(root):
                peak = vm_hwm_kib(pid)
                self.peaks[name][pid] = max(self.peaks[name].get(pid, 0), peak)
        with psycopg.connect(f"{PG}/postgres") as conn:
            counts = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE datname = %s GROUP BY 1",
                [self.app_db],
            ).fetchall()
        for app, count in counts:
            self.connections[app or "this script"] = max(
                self.connections.get(app or "this script", 0), count
            )

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()


# --- SSE clients -----------------------------------------------------------------------------


@dataclass
class Client:
    backup_id: str
    opened: bool = False
    final_event: str = ""
    final_at: float = 0.0
    progress_events: int = 0
    error: str = ""


async def follow(client: Client, port: int, token: str, deadline: float) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        client.error = f"connect: {exc}"
        return
    writer.write(
        (
            f"GET /api/backups/{client.backup_id}/progress HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    buffer = b""
    try:
        while time.time() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout=5)
            except TimeoutError:
                continue
            if not data:
                break
            buffer += data
            if not client.opened and b"\r\n\r\n" in buffer:
                status = buffer.split(b"\r\n", 1)[0]
                if b" 200 " not in status:
                    client.error = status.decode(errors="replace")
                    return
                client.opened = True
            # Each SSE message is one chunk, so an event line is never split by chunking.
            client.progress_events = buffer.count(b"event: progress")
            for name in (b"done", b"failed"):
                if b"event: " + name + b"\n" in buffer:
                    client.final_event, client.final_at = name.decode(), time.time()
                    return
        client.error = client.error or "the stream ended without a final event"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class SseCrowd(threading.Thread):
    def __init__(self, clients: list[Client], port: int, token: str, deadline: float):
        super().__init__(daemon=True)
        self.clients, self.port, self.token, self.deadline = clients, port, token, deadline

    def run(self) -> None:
        async def everyone():
            await asyncio.gather(
                *(follow(c, self.port, self.token, self.deadline) for c in self.clients)
            )

        asyncio.run(everyone())


# --- the app database and its rows ----------------------------------------------------------


@dataclass
class Setup:
    token: str = ""
    backups: list = field(default_factory=list)
    pg_sources: list[str] = field(default_factory=list)


def create_sources(setup: Setup, workdir: Path, count: int, rows: int, tag: str):
    """``count`` small databases, alternately SQLite and PostgreSQL, as Database rows."""
    from backups.engines import ConnectionSpec, get_engine
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project, Role
    from organizations.services import api_token_create
    from tests.fixtures.databases import fill_postgres, fill_sqlite, postgres_server

    org = Organisation.objects.create(name="Load", slug="load")
    project = Project.objects.create(organisation=org, name="Shop", slug="shop")
    env = Environment.objects.create(project=project, name="Production", slug="production")
    Destination.objects.create(organisation=org, name="Local", kind="local", is_default=True)
    _, setup.token = api_token_create(organisation=org, name="load test", role=Role.ADMIN)
    databases = []
    for i in range(count):
        if i % 2 == 0:
            # Inside the organisation's own directory under the tenant root.
            own = workdir / "tenants" / org.slug
            own.mkdir(parents=True, exist_ok=True)
            spec = ConnectionSpec(engine="sqlite", name=str(own / f"source-{i:03d}.sqlite3"))
            get_engine("sqlite").create_database(spec)
            fill_sqlite(spec, rows=rows)
        else:
            spec = postgres_server(f"sbx_load_{tag}_src{i:03d}")
            get_engine("postgresql").create_database(spec)
            setup.pg_sources.append(spec.name)
            fill_postgres(spec, rows=rows)
        databases.append(
            Database.objects.create(
                environment=env,
                name=f"db {i:03d}",
                slug=f"db-{i:03d}",
                engine=spec.engine,
                host=spec.host,
                port=spec.port,
                username=spec.user,
                password=spec.password,
                database_name=spec.name,
            )
        )
    return env, databases


def drop_databases(names: list[str]) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the run ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:  # noqa: C901 - one straight script, top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--backups", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients-per-backup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2000, help="rows per source table")
    parser.add_argument("--rss-bound-mib", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    hard_deadline = time.monotonic() + args.timeout

    # A last resort: whatever hangs, the script ends, and a SIGTERM (``timeout``) too, both
    # through the finally block that stops the processes and drops the databases.
    def give_up(signum, frame):
        raise TimeoutError(f"stopped by signal {signum}")

    signal.signal(signal.SIGALRM, give_up)
    signal.signal(signal.SIGTERM, give_up)
    signal.alarm(int(args.timeout))

    tag = uuid.uuid4().hex[:8]
    app_db = f"sbx_load_{tag}"
    workdir = Path(tempfile.mkdtemp(prefix=f"sbx-load-{tag}-"))
    redis_port = free_port()
    web_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": f"{PG}/{app_db}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "STRONGBOX_MASTER_KEY": secrets.token_urlsafe(32),
        "STRONGBOX_VAR_DIR": str(workdir / "var"),
        "STRONGBOX_TENANT_ROOT": str(workdir / "tenants"),
        "STRONGBOX_WORKERS": "1",
        "STRONGBOX_LOG_LEVEL": "WARNING",
        "STRONGBOX_LOG_JSON": "0",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    processes = Processes(workdir)
    created_dbs = [app_db]
    failures: list[str] = []
    completed_run = False
    try:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{app_db}"')
        processes.start(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(redis_port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
            ],
            env,
        )

        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import backups.services as backup_services
        from backups.models import Backup, BackupStatus
        from backups.services import backup_request, backup_verify

        print(f"app database {app_db} (PostgreSQL), Redis broker on 127.0.0.1:{redis_port}")
        setup = Setup()
        started = time.monotonic()
        environment, databases = create_sources(setup, workdir, args.backups, args.rows, tag)
        created_dbs += setup.pg_sources
        print(
            f"{args.backups} sources ({len(setup.pg_sources)} PostgreSQL, "
            f"{args.backups - len(setup.pg_sources)} SQLite, {args.rows} rows per table) "
            f"in {time.monotonic() - started:.1f}s"
        )

        # Named connections, so that the figures can tell the web's from the workers'.
        web_env = {**env, "DATABASE_URL": f"{PG}/{app_db}?application_name=sbx-load-web"}
        worker_env = {**env, "DATABASE_URL": f"{PG}/{app_db}?application_name=sbx-load-worker"}
        web = processes.start(
            "web",
            [
                str(ROOT / ".venv/bin/uvicorn"),
                "config.asgi:application",
                *("--host", "127.0.0.1", "--port", str(web_port), "--log-level", "warning"),
            ],
            web_env,
        )
        workers = {
            f"worker-{i}": processes.start(
                f"worker-{i}", [sys.executable, str(ROOT / "manage.py"), "qcluster"], worker_env
            )
            for i in range(args.workers)
        }

        def web_is_up() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", web_port)):
                return True
            return web.poll() is not None

        wait_until(web_is_up, 30, "uvicorn to listen")
        if web.poll() is not None:
            raise RuntimeError("uvicorn exited:\n" + processes.log("web"))
        from django_q.status import Stat

        # Each cluster's sentinel publishes its status on the broker once it is running.
        wait_until(lambda: len(Stat.get_all()) >= args.workers, 60, "every worker to start")

        # The rows first, with their tasks held back, so that every client is following its
        # backup before any work starts.
        held = []
        real_enqueue = backup_services.enqueue_backup
        backup_services.enqueue_backup = held.append
        try:
            for database in databases:
                setup.backups += backup_request(
                    environment=environment, kind="database", database=database
                )
        finally:
            backup_services.enqueue_backup = real_enqueue
        clients = [
            Client(str(backup.id))
            for backup in setup.backups
            for _ in range(args.clients_per_backup)
        ]
        crowd = SseCrowd(clients, web_port, setup.token, time.time() + args.timeout)
        crowd.start()
        wait_until(
            lambda: all(c.opened or c.error for c in clients), 60, "every SSE client to open"
        )
        opened = sum(c.opened for c in clients)

        sampler = RssSampler({name: p.pid for name, p in workers.items()}, app_db)
        sampler.sample()
        sampler.start()
        t0 = time.monotonic()
        for backup in held:
            real_enqueue(backup)
        ids = [b.id for b in setup.backups]

        def all_ended() -> bool:
            dead = [name for name, p in workers.items() if p.poll() is not None]
            if dead or web.poll() is not None:
                raise RuntimeError(f"a process exited early: {dead or 'web'}")
            return not Backup.objects.filter(
                pk__in=ids,
                status__in=[BackupStatus.SCHEDULED, BackupStatus.IN_PROGRESS],
            ).exists()

        wait_until(all_ended, max(1, hard_deadline - time.monotonic()), "every backup to end", 0.1)
        wall = time.monotonic() - t0
        wait_until(
            lambda: all(c.final_event or c.error for c in clients), 30, "every final SSE event"
        )
        sampler.stopped.set()
        sampler.join()
        sampler.sample()

        rows = {b.pk: b for b in Backup.objects.filter(pk__in=ids)}
        statuses = [b.status for b in rows.values()]
        completed = statuses.count(BackupStatus.COMPLETED)
        verified = sum(backup_verify(backup=b) for b in rows.values() if b.status == "completed")
        finals = [c for c in clients if c.final_event]
        lags = [
            c.final_at - rows[uuid.UUID(c.backup_id)].completed_at.timestamp()
            for c in finals
            if rows[uuid.UUID(c.backup_id)].completed_at
        ]
        durations = [
            (b.completed_at - b.started_at).total_seconds()
            for b in rows.values()
            if b.completed_at and b.started_at
        ]
        artifact_bytes = sum(b.size or 0 for b in rows.values())

        print(f"\nprofile: PostgreSQL app database + Redis broker; {args.workers} x qcluster")
        print("         with 1 worker process each; uvicorn (1 process) for the API and SSE")
        print(f"backups: {completed}/{args.backups} completed, {verified} verified")
        print(f"wall (enqueue to last completion): {wall:.1f} s")
        print(f"throughput: {args.backups / wall:.2f} backups/s")
        print(
            f"per backup: median {statistics.median(durations):.2f} s, "
            f"max {max(durations):.2f} s; artifacts {artifact_bytes / MiB:.1f} MiB in all"
        )
        print(
            f"SSE: {len(finals)} final events / {opened} opened / {len(clients)} clients; "
            f"progress events {sum(c.progress_events for c in clients)}"
        )
        if lags:
            print(
                f"completion -> final event: p50 {percentile(lags, 0.5) * 1000:.0f} ms, "
                f"p95 {percentile(lags, 0.95) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
            )
        print(
            "peak app database connections: "
            + ", ".join(f"{k} {v}" for k, v in sorted(sampler.connections.items()))
        )
        print(f"peak RSS (VmHWM), bound {args.rss_bound_mib} MiB per process:")
        for name, peaks in sampler.peaks.items():
            biggest = max(peaks.values()) / 1024
            print(
                f"  {name}: largest process {biggest:.0f} MiB; "
                f"{len(peaks)} processes, sum of peaks {sum(peaks.values()) / 1024:.0f} MiB"
            )
            if biggest > args.rss_bound_mib:
                failures.append(f"{name} peaked at {biggest:.0f} MiB")

        if completed != args.backups:
            failures.append(
                "not completed: "
                + "; ".join(f"{b.name}: {b.status} {b.message[:200]}" for b in rows.values())
            )
        if verified != completed:
            failures.append(f"only {verified} of {completed} verified")
        if len(finals) != len(clients) or opened != len(clients):
            errors = {c.error for c in clients if c.error}
            failures.append(f"SSE clients without a final event: {errors}")
        completed_run = True
    finally:
        signal.alarm(0)
        processes.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        drop_databases(created_dbs)
        if failures or not completed_run:
            kept = Path(tempfile.gettempdir()) / f"sbx-load-{tag}-logs"
            kept.mkdir(exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, kept / log.name)
            print(f"process logs kept in {kept}")
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"dropped {len(created_dbs)} databases, stopped {len(processes.children)} processes")

    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
