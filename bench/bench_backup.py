"""Benchmark a Strongbox backup, run by a real django-q2 worker, against the shell pipeline and
django-dbbackup, interleaved, and print medians and ratios.

    .venv/bin/python bench/bench_backup.py [--engine postgresql|mariadb] [--sizes 250,500]
        [--runs 5] [--no-s3] [--no-dbbackup] [--dbbackup-path DIR] [--keep]

Contenders, per database size, run in rounds (each round runs every contender once, the order
rotated from round to round); medians over the rounds:
  (a) the baseline, a shell pipeline: `pg_dump -Fc -Z0 | zstd -3 -T2 > file` or
      `mariadb-dump --single-transaction | zstd -3 -T2 > file`
  (b) a Strongbox backup to a local destination
  (c) the same to S3 (moto's S3-protocol server on loopback)
  (d) django-dbbackup (`manage.py dbbackup --compress`: a dump, then gzip), a command of its
      own, so its time includes its interpreter's start
(b) and (c) run in one `manage.py qcluster` started once (one worker, the queue polled every
50 ms: bench/strongbox_bench_settings.py). Their time is the user's: from `backup_request()`
(the API's service) to the row reading completed, polled every 20 ms; "in worker" is the
row's started_at -> completed_at (the claim to the final write).

What is measured, and how:
  wall    time.monotonic() around each case
  cpu     user+system of the whole process tree: for the worker, the change of its own
          utime+stime+cutime+cstime (/proc/<pid>/stat; the dump tool is its child, reaped
          before the job ends); for a command, RUSAGE_CHILDREN of this process. moto's CPU is
          not counted (it stands for the storage, like the disk for (a)).
  peak    RSS of the job's process tree: every 25 ms the VmRSS of the worker (or the
          command) and each of its descendants, found by walking /proc, is summed; the
          largest sum is the peak (shared pages count once per process, so it errs high).
          "hwm" adds the kernel's own peaks instead (VmHWM of each process, last read), an
          upper bound that sampling cannot miss.
  load    os.getloadavg() before and after each size's rounds.
The database is filled with random words (compresses ~2-3x, like real text).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import shutil
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
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root"}
ZSTD_LEVEL = 3
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# --- the databases ------------------------------------------------------------------------


def _rows(rng: random.Random, vocab: list[str], n: int):
    for _ in range(n):
        yield (
            " ".join(rng.choices(vocab, k=4)),
            " ".join(rng.choices(vocab, k=rng.randint(10, 40))),
            f"{rng.choice(vocab)}@{rng.choice(vocab)}.com",
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 12:00:00",
            rng.randint(0, 10**7) / 100,
            rng.random() < 0.1,
        )


def _vocabulary(rng: random.Random) -> list[str]:
    return [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 11)))
        for _ in range(20000)
    ]


def fill_postgres(name: str, size_mb: int) -> int:
    import psycopg

    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    rng = random.Random(size_mb)
    vocab = _vocabulary(rng)
    with psycopg.connect(**PG, dbname=name, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events (id bigserial PRIMARY KEY, title text, body text,"
            " email text, happened_at timestamptz, amount numeric(12,2), flag boolean)"
        )
        target = size_mb * 1024 * 1024
        while conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] < target:
            with conn.cursor().copy(
                "COPY events (title, body, email, happened_at, amount, flag) FROM STDIN"
            ) as copy:
                for row in _rows(rng, vocab, 50_000):
                    copy.write_row(row)
        conn.execute("ANALYZE")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def fill_mariadb(name: str, size_mb: int) -> int:
    import pymysql

    conn = pymysql.connect(**MY, autocommit=True, local_infile=True)
    rng = random.Random(size_mb)
    vocab = _vocabulary(rng)
    size_query = (
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"
        " WHERE table_schema = %s"
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{name}`")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS events (id bigint AUTO_INCREMENT PRIMARY KEY,"
                " title text, body text, email text, happened_at datetime,"
                " amount decimal(12,2), flag boolean)"
            )
            target = size_mb * 1024 * 1024
            while True:
                cur.execute("ANALYZE TABLE events")
                cur.execute(size_query, (name,))
                if int(cur.fetchone()[0]) >= target:
                    break
                with tempfile.NamedTemporaryFile("w", suffix=".tsv") as tsv:
                    for title, body, email, at, amount, flag in _rows(rng, vocab, 50_000):
                        tsv.write(f"{title}\t{body}\t{email}\t{at}\t{amount}\t{int(flag)}\n")
                    tsv.flush()
                    cur.execute(
                        f"LOAD DATA LOCAL INFILE '{tsv.name}' INTO TABLE events"
                        " (title, body, email, happened_at, amount, flag)"
                    )
            cur.execute(size_query, (name,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def drop_database(engine: str, name: str) -> None:
    if engine == "postgresql":
        import psycopg

        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        import pymysql

        conn = pymysql.connect(**MY, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


# --- the process tree -------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes (0 for a process that is gone or a zombie)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) * 1024
    return values


def descendants(root: int) -> list[int]:
    """root and every process below it, from one walk of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def process_names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as fh:
                names.append(fh.read().strip())
    return names


def tree_cpu(pid: int) -> float:
    """utime + stime of pid and of its reaped children, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICKS


class TreeSampler:
    """Samples the summed VmRSS (and VmHWM) of `root`'s process tree on a thread."""

    INTERVAL = 0.025

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0
        self.hwm: dict[int, int] = {}
        self.names: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.INTERVAL):
                return

    def sample(self) -> None:
        pids = descendants(self.root)
        total = 0
        for pid in pids:
            status = _status(pid)
            total += status["VmRSS"]
            if status["VmHWM"]:
                self.hwm[pid] = status["VmHWM"]
        self.peak = max(self.peak, total)
        if len(pids) > 1:
            self.names.update(process_names(pids[1:]))

    @property
    def hwm_bound(self) -> int:
        return sum(self.hwm.values())


# --- the contenders -----------------------------------------------------------------------


@dataclass
class Case:
    label: str
    wall: float
    cpu: float
    peak: int
    hwm: int
    artifact: int = 0
    in_worker: float | None = None
    children: list[str] = field(default_factory=list)
    round: int = 0


def run_command(label: str, argv, *, env=None, shell=False, out: Path | None = None) -> Case:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, stdout=subprocess.DEVNULL)  # noqa: S602
    with TreeSampler(proc.pid) as sampler:
        returncode = proc.wait()
    wall = time.monotonic() - started
    if returncode != 0:
        raise SystemExit(f"{label} failed with {returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    artifact = out.stat().st_size if out and out.exists() else 0
    return Case(label, wall, cpu, sampler.peak, sampler.hwm_bound, artifact)


def baseline_command(engine: str, name: str, out: Path) -> str:
    # A shell pipeline on purpose: it is what an operator would run.
    if engine == "postgresql":
        dump = f"pg_dump -Fc -Z0 -h {PG['host']} -p {PG['port']} -U {PG['user']} {name}"
    else:
        dump = (
            f"mariadb-dump --single-transaction -h {MY['host']} -P {MY['port']} -u {MY['user']}"
            f" {name}"
        )
    return f"{dump} | zstd -q -{ZSTD_LEVEL} -T2 > {out}"


class Worker:
    """A `manage.py qcluster` with one worker, and the Django side that asks it for backups."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.worker_pid: int | None = None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def _find_worker(self) -> None:
        """The worker process is the dump tool's parent (django-q2 runs a task in it)."""
        for pid in descendants(self.proc.pid):
            if process_names([pid])[:1] and process_names([pid])[0] in DUMP_TOOLS:
                with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                    self.worker_pid = int(fh.read().rsplit(")", 1)[1].split()[1])
                return

    def rss(self) -> dict[str, int]:
        return _status(self.worker_pid) if self.worker_pid else {}


DUMP_TOOLS = ("pg_dump", "mariadb-dump", "mysqldump")


class JobSampler(TreeSampler):
    """The cluster's tree, keeping the sums of the worker's own subtree (the job's)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker.proc.pid)
        self.worker = worker
        self.job_peak = 0
        self.job_hwm: dict[int, int] = {}

    def sample(self) -> None:
        if self.worker.worker_pid is None:
            self.worker._find_worker()  # noqa: SLF001 - the sampler and the worker cooperate
        pid = self.worker.worker_pid
        if pid is None:
            return
        pids = descendants(pid)
        total = 0
        for p in pids:
            status = _status(p)
            total += status["VmRSS"]
            if status["VmHWM"]:
                self.job_hwm[p] = status["VmHWM"]
        self.job_peak = max(self.job_peak, total)
        if len(pids) > 1:
            self.names.update(process_names(pids[1:]))


def worker_backup(worker: Worker, label: str, database_id: str, destination_id: str) -> Case:
    """One backup through the running worker, its process tree sampled throughout."""
    from backups.models import BackupStatus
    from backups.services import backup_request
    from organizations.models import Database

    database = Database.objects.select_related("environment").get(pk=database_id)
    if worker.worker_pid is None:
        raise SystemExit("warm the worker up first (worker_warm_up)")
    cpu_before = tree_cpu(worker.worker_pid)
    with JobSampler(worker) as sampler:
        started = time.monotonic()
        (backup,) = backup_request(
            environment=database.environment,
            kind="database",
            database=database,
            destination_ids=[destination_id],
        )
        row = wait_for_backup(worker, backup.pk, started)
        wall = time.monotonic() - started
    if row.status != BackupStatus.COMPLETED:
        raise SystemExit(f"{label} ended {row.status}: {row.message}")
    cpu = tree_cpu(worker.worker_pid) - cpu_before
    return Case(
        label,
        wall,
        cpu,
        sampler.job_peak,
        sum(sampler.job_hwm.values()),
        row.size or 0,
        (row.completed_at - row.started_at).total_seconds(),
        sorted(sampler.names),
    )


def wait_for_backup(worker: Worker, backup_id, started: float):
    from backups.models import Backup, BackupStatus

    done = (BackupStatus.COMPLETED, BackupStatus.FAILED, BackupStatus.ABORTED)
    while (row := Backup.objects.get(pk=backup_id)).status not in done:
        if worker.proc.poll() is not None:
            raise SystemExit("the worker exited; see its log")
        if time.monotonic() - started > 3600:
            raise SystemExit("no result within an hour")
        time.sleep(0.02)
    return row


def worker_warm_up(worker: Worker, database_id: str, destination_id: str) -> None:
    """A first backup, not counted: finds the worker process (the dump tool's parent) and
    leaves the database's pages cached for every contender alike."""
    from backups.services import backup_request
    from organizations.models import Database

    database = Database.objects.select_related("environment").get(pk=database_id)
    started = time.monotonic()
    (backup,) = backup_request(
        environment=database.environment,
        kind="database",
        database=database,
        destination_ids=[destination_id],
    )
    with JobSampler(worker):
        row = wait_for_backup(worker, backup.pk, started)
    if worker.worker_pid is None:
        raise SystemExit("never saw the dump tool under the worker")
    if row.status != "completed":
        raise SystemExit(f"the warm-up backup ended {row.status}: {row.message}")


# --- Django set-up ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on {port} after {timeout}s")
        time.sleep(0.05)


@dataclass
class Harness:
    """The app database, its settings in this process, a worker and (optionally) moto."""

    engine: str
    work: Path
    app_db: str
    env: dict[str, str]
    worker: Worker | None = None
    moto: subprocess.Popen | None = None
    s3_endpoint: str = ""

    @classmethod
    def start(cls, engine: str, *, s3: bool) -> Harness:
        import psycopg

        work = Path(tempfile.mkdtemp(prefix="strongbox-bench-"))
        app_db = f"sbx_bench_app_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{app_db}"')
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="strongbox_bench_settings",
            PYTHONPATH=os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
            DATABASE_URL=f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{app_db}",
            STRONGBOX_VAR_DIR=str(work / "var"),
            STRONGBOX_LOCAL_DESTINATION_ROOT=str(work / "artifacts"),
            STRONGBOX_COMPRESSION_LEVEL=str(ZSTD_LEVEL),
            STRONGBOX_WORKERS="1",
            STRONGBOX_LOG_LEVEL="WARNING",
            STRONGBOX_MASTER_KEY="",
            AWS_EC2_METADATA_DISABLED="true",
        )
        harness = cls(engine, work, app_db, env)
        try:
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True
            )
            os.environ.update(env)
            sys.path.insert(0, str(ROOT / "bench"))
            import django

            django.setup()
            if s3:
                harness._start_moto()
            harness.worker = Worker(env, work / "worker.log")
        except BaseException:
            harness.stop()
            raise
        return harness

    def _start_moto(self) -> None:
        port = free_port()
        self.moto = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        wait_for_port(port)
        self.s3().create_bucket(Bucket="bench")

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto accepts anything
            region_name="us-east-1",
        )

    def empty_destinations(self) -> None:
        """Artifacts are not kept between runs: moto holds them in memory."""
        shutil.rmtree(self.work / "artifacts", ignore_errors=True)
        if self.moto:
            client = self.s3()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench"):
                for obj in page.get("Contents", []):
                    client.delete_object(Bucket="bench", Key=obj["Key"])

    def objects(self, databases: list[str]) -> dict[str, str]:
        from destinations.models import Destination
        from organizations.models import Database, Environment, Organisation, Project

        org, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        project, _ = Project.objects.get_or_create(
            organisation=org, slug="bench", defaults={"name": "Bench"}
        )
        env, _ = Environment.objects.get_or_create(
            project=project, slug="bench", defaults={"name": "Bench"}
        )
        server = PG if self.engine == "postgresql" else MY
        ids = {}
        for name in databases:
            db, _ = Database.objects.get_or_create(
                environment=env,
                slug=name.replace("_", "-"),
                defaults={
                    "name": name,
                    "engine": self.engine,
                    "host": server["host"],
                    "port": server["port"],
                    "username": server["user"],
                    "database_name": name,
                },
            )
            ids[name] = str(db.id)
        local, _ = Destination.objects.get_or_create(
            organisation=org, name="local", defaults={"kind": "local"}
        )
        ids["local"] = str(local.id)
        if self.moto:
            s3, _ = Destination.objects.update_or_create(
                organisation=org,
                name="s3",
                defaults={
                    "kind": "s3",
                    "config": {
                        "bucket": "bench",
                        "endpoint_url": self.s3_endpoint,
                        "region": "us-east-1",
                    },
                    "secrets": {"access_key_id": "bench", "secret_access_key": "bench"},
                },
            )
            ids["s3"] = str(s3.id)
        return ids

    def stop(self) -> None:
        if self.worker:
            self.worker.stop()
        if self.moto:
            self.moto.terminate()
            self.moto.wait()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        import psycopg

        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.app_db}" WITH (FORCE)')
        shutil.rmtree(self.work, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["postgresql", "mariadb"], default="postgresql")
    parser.add_argument("--sizes", default="250,500")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--no-dbbackup", action="store_true")
    parser.add_argument(
        "--dbbackup-path",
        default="",
        help="a directory holding django-dbbackup when it is not in this environment",
    )
    parser.add_argument(
        "--db-prefix", default="", help="name the source databases <prefix>_<size>mb"
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5: medians of fewer runs are not reported")

    sizes = [int(s) for s in args.sizes.split(",")]
    prefix = args.db_prefix or ("sbx_bench" if args.engine == "postgresql" else "sbx_bench_my")
    names = [f"{prefix}_{s}mb" for s in sizes]
    fill = fill_postgres if args.engine == "postgresql" else fill_mariadb
    for size, name in zip(sizes, names, strict=True):
        t0 = time.monotonic()
        actual = fill(name, size)
        print(f"database {name}: {actual / 2**20:.0f} MB ({time.monotonic() - t0:.0f}s to prepare)")
    harness = Harness.start(args.engine, s3=not args.no_s3)
    try:
        ids = harness.objects(names)
        assert harness.worker is not None  # noqa: S101 - started above
        worker_warm_up(harness.worker, ids[names[0]], ids["local"])
        print(f"worker process {harness.worker.worker_pid}; load {load()}")
        results = []
        for size, name in zip(sizes, names, strict=True):
            results.append(run_size(args, harness, size, name, ids))
            if args.engine == "mariadb":
                results[-1]["counting"] = counting_cost(name, args.runs)
        for block in results:
            print_block(block)
    finally:
        harness.stop()
        if not args.keep:
            for name in names:
                drop_database(args.engine, name)


def run_size(args, harness: Harness, size: int, name: str, ids: dict[str, str]) -> dict:
    work, engine = harness.work, args.engine
    assert harness.worker is not None  # noqa: S101
    tool = "pg_dump -Fc -Z0" if engine == "postgresql" else "mariadb-dump --single-transaction"
    contenders = {
        "a": (
            f"(a) {tool} | zstd -{ZSTD_LEVEL} -T2",
            lambda: run_command(  # noqa: S604 - the operator's pipeline, our own arguments
                "a",
                baseline_command(engine, name, work / "baseline.zst"),
                shell=True,
                out=work / "baseline.zst",
            ),
        ),
        "b": (
            "(b) Strongbox -> local",
            lambda: worker_backup(harness.worker, "b", ids[name], ids["local"]),
        ),
    }
    if "s3" in ids:
        contenders["c"] = (
            "(c) Strongbox -> S3 (moto)",
            lambda: worker_backup(harness.worker, "c", ids[name], ids["s3"]),
        )
    if not args.no_dbbackup:
        dbb_env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in [str(ROOT / "bench"), args.dbbackup_path] if p),
            BENCH_ENGINE=engine,
            BENCH_DB_NAME=name,
            BENCH_OUT_DIR=str(work / "dbbackup"),
            DJANGO_SETTINGS_MODULE="dbbackup_settings",
        )
        contenders["d"] = (
            "(d) django-dbbackup --compress",
            lambda: run_command(
                "d",
                [sys.executable, "-m", "django", "dbbackup", "--compress", "--noinput"],
                env=dbb_env,
            ),
        )
    keys = list(contenders)
    runs: dict[str, list[Case]] = {k: [] for k in keys}
    failures: dict[str, int] = {}
    load_before = load()
    for round_no in range(args.runs):
        order = keys[round_no % len(keys) :] + keys[: round_no % len(keys)]
        for key in order:
            (work / "dbbackup").mkdir(exist_ok=True)
            try:
                case = contenders[key][1]()
            except SystemExit as exc:  # one failed run is reported, the others still count
                print(f"{size} MB round {round_no + 1}: {key} FAILED: {exc}", flush=True)
                failures[key] = failures.get(key, 0) + 1
                harness.empty_destinations()
                continue
            case.round = round_no
            if key == "d":
                case.artifact = sum(p.stat().st_size for p in (work / "dbbackup").iterdir())
            runs[key].append(case)
            harness.empty_destinations()
            shutil.rmtree(work / "dbbackup", ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (work / "baseline.zst").unlink()
        print(
            f"{size} MB round {round_no + 1}: "
            + "  ".join(f"{k} {runs[k][-1].wall:.2f}s" for k in keys if runs[k])
            + f"  load {load()}",
            flush=True,
        )
    worker_rss = harness.worker.rss()
    return {
        "size": size,
        "labels": {k: v[0] for k, v in contenders.items()},
        "runs": runs,
        "load": (load_before, load()),
        "worker_rss": worker_rss,
        "engine": engine,
        "failures": failures,
    }


def counting_cost(name: str, runs: int) -> str:
    """MariaDB: the CPU the stream counter spends on the dump (thread time in feed()), and
    the wall time the COUNT(*) that used to run before the dump takes, medians of `runs`."""
    from backups.engines import ConnectionSpec
    from backups.engines.mysql import MySQLEngine
    from backups.engines.mysql_rows import DumpRowCounter

    spec = ConnectionSpec(
        engine="mariadb", host=MY["host"], port=MY["port"], user=MY["user"], name=name
    )
    feed_cpu, count_wall, sizes = [], [], []
    for _ in range(runs):
        argv = ["mariadb-dump", "--single-transaction", "--quick", "--hex-blob", "-h", MY["host"]]
        proc = subprocess.Popen([*argv, "-u", MY["user"], name], stdout=subprocess.PIPE)
        counter, spent, size = DumpRowCounter(), 0.0, 0
        while chunk := proc.stdout.read(1 << 20):
            t0 = time.thread_time()
            counter.feed(chunk)
            spent += time.thread_time() - t0
            size += len(chunk)
        proc.wait()
        counter.finish()
        feed_cpu.append(spent)
        sizes.append(size)
        engine = MySQLEngine("mariadb")
        t0 = time.monotonic()
        expected = engine.row_counts(spec)
        count_wall.append(time.monotonic() - t0)
        if counter.failed or counter.counts != expected:
            raise SystemExit(f"the stream counter disagrees: {counter.failed} {counter.counts}")
    size = statistics.median(sizes)
    cpu = statistics.median(feed_cpu)
    return (
        f"counting rows in the dump stream: {cpu:.2f} s CPU for {size / 2**20:.0f} MB of SQL"
        f" ({size / 2**20 / cpu:.0f} MB/s); the COUNT(*) that ran before the dump:"
        f" {statistics.median(count_wall):.2f} s; medians of {runs}, load {load()}"
    )


def _median(cases: list[Case], attr: str) -> float:
    return statistics.median(getattr(c, attr) for c in cases)


def print_block(block: dict) -> None:
    size, runs, labels = block["size"], block["runs"], block["labels"]
    n = len(runs["a"])
    runs = {k: v for k, v in runs.items() if v}
    print()
    print(
        f"{block['engine']} {size} MB, medians of {n} interleaved runs; "
        f"load average (1/5/15 min) before {block['load'][0]}, after {block['load'][1]}"
    )
    print(
        f"{'case':52} {'wall s':>7} {'in worker':>9} {'cpu s':>6} {'peak MB':>8}"
        f" {'hwm MB':>7} {'artifact MB':>11}"
    )
    for key, cases in runs.items():
        in_worker = [c.in_worker for c in cases if c.in_worker is not None]
        print(
            f"{labels[key]:52} {_median(cases, 'wall'):>7.2f}"
            f" {(statistics.median(in_worker) if in_worker else float('nan')):>9.2f}"
            f" {_median(cases, 'cpu'):>6.2f} {_median(cases, 'peak') / 2**20:>8.0f}"
            f" {_median(cases, 'hwm') / 2**20:>7.0f} {_median(cases, 'artifact') / 2**20:>11.1f}"
        )
    for key, failed in block["failures"].items():
        print(f"{labels[key]}: {failed} of {n + failed} runs failed and are left out")
    a = _median(runs["a"], "wall")
    target = 1.05 if block["engine"] == "postgresql" else 1.10
    parts = []
    for key in ("b", "c"):
        if key in runs:
            base = {c.round: c.wall for c in runs["a"]}
            paired = statistics.median(c.wall / base[c.round] for c in runs[key] if c.round in base)
            parts.append(
                f"({key})/(a) = {_median(runs[key], 'wall') / a:.2f}"
                f" (median of per-round ratios {paired:.2f}; target <= {target:.2f})"
            )
    if "d" in runs:
        parts.append(f"(d)/(b) = {_median(runs['d'], 'wall') / _median(runs['b'], 'wall'):.2f}")
    print("  ".join(parts))
    if "counting" in block:
        print(block["counting"])
    children = sorted({name for c in runs["b"] for name in c.children})
    rss = block["worker_rss"]
    print(
        f"the job's tree: worker + {', '.join(children) or 'nothing'}; the worker's RSS after"
        f" the runs {rss.get('VmRSS', 0) / 2**20:.0f} MB, its high-water mark"
        f" {rss.get('VmHWM', 0) / 2**20:.0f} MB"
    )


if __name__ == "__main__":
    main()
