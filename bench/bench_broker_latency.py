"""Benchmark: API request -> backup started, through a real django-q2 cluster.

    .venv/bin/python bench/bench_broker_latency.py [--requests 20] [--rounds 5] [--idle 10]

For each broker configuration a real cluster (``manage.py qcluster``, the settings' own
Q_CLUSTER) runs against a throwaway PostgreSQL app database; the bench posts
``POST /api/environments/{id}/backups`` through Django's test client (the whole view stack,
in this process) and measures from just before the request to the ``started_at`` the worker
wrote when it claimed the backup (same clock: one machine). Each backup backs up a tiny
PostgreSQL database and is waited for before the next request (one active backup per
database), so every request meets an idle worker, which is the latency in question.

Configurations run interleaved: every round runs each one (a fresh cluster each time) in
turn, so the machine's load falls on all alike. The figures are the medians of each
round's p50 and p95. Idle CPU: the CPU seconds of the cluster's whole process tree and of
the PostgreSQL server processes serving the app database (where the ORM broker's polls
land) over ``--idle`` seconds with nothing queued, as a share of one core.

Configurations: ``redis`` (REDIS_URL set: django-q2's Redis broker, BLPOP) and ``orm``
(no REDIS_URL: django-q2's ORM broker, which polls its table every ``poll`` seconds).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = os.environ.get("STRONGBOX_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("STRONGBOX_BENCH_REDIS", "redis://127.0.0.1:6379/0")
RUN = uuid.uuid4().hex[:8]
APP_DB = f"sbx_bench_broker_{RUN}"
SOURCE_DB = f"sbx_bench_broker_src_{RUN}"
CONFIGS = {
    "redis": {"REDIS_URL": REDIS},
    "orm": {"REDIS_URL": ""},
    "orm-0.1": {"REDIS_URL": "", "STRONGBOX_QUEUE_POLL_SECONDS": "0.1"},
}


def admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def backend_pids() -> list[int]:
    """The PostgreSQL server processes serving the app database (the cluster's queries)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (APP_DB,))
        return [pid for (pid,) in rows]


def idle_cpu_seconds(cluster_pid: int) -> float:
    """CPU seconds of the cluster's process tree and of the server processes it queries."""
    return tree_cpu_seconds([cluster_pid, *backend_pids()])


def tree_cpu_seconds(root_pids: list[int]) -> float:
    """utime + stime of processes and all their descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(root_pids)
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / ticks
        todo.extend(children.get(pid, []))
    return total


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Cluster:
    def __init__(self, config: str, log: Path) -> None:
        env = dict(os.environ)
        env.update(CONFIGS[config])
        if not env["REDIS_URL"]:
            env.pop("REDIS_URL")
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def use_broker(config: str) -> None:
    """Point this process's enqueueing at the configuration's broker (as its settings would)."""
    from django_q.conf import Conf

    redis_url = CONFIGS[config]["REDIS_URL"]
    Conf.REDIS = redis_url or {}
    Conf.ORM = None if redis_url else "default"


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def measure(client, environment, requests: int) -> tuple[list[float], list[float]]:
    """Request -> started latencies, and enqueued -> started (the broker and the worker)."""
    from django_q.signals import pre_enqueue

    from backups.models import Backup

    latencies, handed = [], []
    enqueued: list[float] = []

    def on_enqueue(**kwargs) -> None:
        enqueued.append(time.time())

    pre_enqueue.connect(on_enqueue, weak=False)
    for _ in range(requests + 1):  # the first warms the cluster and is not counted
        started = time.time()
        response = client.post(
            f"/api/environments/{environment.id}/backups",
            {"type": "db"},
            content_type="application/json",
        )
        assert response.status_code == 202, response.content
        backup_id = response.json()["results"][0]["id"]
        row = wait(
            lambda backup_id=backup_id: Backup.objects.filter(
                pk=backup_id, started_at__isnull=False
            ).first(),
            60,
            "the backup to start",
        )
        latencies.append(row.started_at.timestamp() - started)
        handed.append(row.started_at.timestamp() - enqueued[-1])
        wait(
            lambda backup_id=backup_id: Backup.objects.filter(
                pk=backup_id, status__in=["completed", "failed", "aborted"]
            ).exists(),
            120,
            "the backup to end",
        )
    pre_enqueue.disconnect(on_enqueue)
    return latencies[1:], handed[1:]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="per configuration and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    configs = args.configs.split(",")
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="strongbox-bench-broker-"))
    workdir.mkdir(parents=True, exist_ok=True)

    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=f"{PG}/{APP_DB}",
        STRONGBOX_TEST_QUEUE=f"strongbox-bench-broker-{RUN}",
        STRONGBOX_LOCAL_DESTINATION_ROOT=str(workdir / "artifacts"),
        STRONGBOX_TMP_DIR=str(workdir / "tmp"),
        STRONGBOX_LOG_LEVEL="WARNING",
    )
    os.environ.pop("REDIS_URL", None)
    admin(f"CREATE DATABASE {APP_DB}")
    admin(f"CREATE DATABASE {SOURCE_DB}")
    try:
        run(args, configs, workdir)
    finally:
        from django.db import connections

        connections.close_all()
        admin(f"DROP DATABASE IF EXISTS {APP_DB} WITH (FORCE)")
        admin(f"DROP DATABASE IF EXISTS {SOURCE_DB} WITH (FORCE)")


def run(args, configs: list[str], workdir: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project, Role
    from organizations.services import api_token_create

    setup_test_environment()
    call_command("migrate", verbosity=0)
    org = Organisation.objects.create(slug="bench", name="Bench")
    project = Project.objects.create(organisation=org, slug="bench", name="Bench")
    environment = Environment.objects.create(project=project, slug="bench", name="Bench")
    Destination.objects.create(organisation=org, name="Local", kind="local", is_default=True)
    Database.objects.create(
        environment=environment,
        slug="main",
        name="main",
        engine="postgresql",
        host="127.0.0.1",
        port=5432,
        username="postgres",
        database_name=SOURCE_DB,
    )
    _, raw = api_token_create(organisation=org, name="bench", role=Role.OPERATOR)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    print(f"poll {settings.Q_CLUSTER['poll']}s, {args.requests} requests per configuration")

    p50s: dict[str, list[float]] = {c: [] for c in configs}
    p95s: dict[str, list[float]] = {c: [] for c in configs}
    idle: dict[str, list[float]] = {c: [] for c in configs}
    handed_p50s: dict[str, list[float]] = {c: [] for c in configs}
    loads = []
    for round_number in range(1, args.rounds + 1):
        for config in configs:
            use_broker(config)
            cluster = Cluster(config, workdir / f"cluster-{config}.log")
            try:
                latencies, handed = measure(client, environment, args.requests)
                time.sleep(1)  # let the last backup's end settle before sampling idle CPU
                before = idle_cpu_seconds(cluster.process.pid)
                time.sleep(args.idle)
                idle[config].append((idle_cpu_seconds(cluster.process.pid) - before) / args.idle)
            finally:
                cluster.stop()
            p50s[config].append(statistics.median(latencies))
            handed_p50s[config].append(statistics.median(handed))
            p95s[config].append(percentile(latencies, 0.95))
            loads.append(load_average())
            print(
                f"round {round_number} {config:<6} p50 {p50s[config][-1] * 1000:6.0f} ms"
                f"  p95 {p95s[config][-1] * 1000:6.0f} ms  max {max(latencies) * 1000:6.0f} ms"
                f"  (enqueued -> started p50 {handed_p50s[config][-1] * 1000:4.0f} ms)"
                f"  idle CPU {idle[config][-1] * 100:5.1f}% of a core  load {loads[-1]}"
            )
    print(f"medians over {args.rounds} interleaved rounds (load at the end {load_average()}):")
    base = statistics.median(p50s[configs[0]])
    for config in configs:
        p50 = statistics.median(p50s[config])
        print(
            f"  {config:<6} p50 {p50 * 1000:6.0f} ms  p95 "
            f"{statistics.median(p95s[config]) * 1000:6.0f} ms  (enqueued -> started "
            f"{statistics.median(handed_p50s[config]) * 1000:4.0f} ms)  idle CPU "
            f"{statistics.median(idle[config]) * 100:5.1f}% of a core  "
            f"p50 ratio to {configs[0]} {p50 / base:.2f}x"
        )


if __name__ == "__main__":
    main()
