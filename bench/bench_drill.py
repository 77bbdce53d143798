"""Benchmark a restore drill of a PostgreSQL database against a plain restore of it.

    .venv/bin/python bench/bench_drill.py [--size-mb 20] [--runs 3] [--dir DIR]

One real backup (pg_dump -> zstd -> AES-GCM -> local destination) is made through the
services; then, interleaved (drill, restore, drill, restore, …) so that cache and
checkpoint state favour neither:

- a drill (``drill_execute``): verify the artifact, load it into a throwaway database on the
  same server, count every table, drop it;
- a restore (``restore_execute``, in place, safety backup off: a safety backup is a backup,
  not part of a restore's cost): verify, load into a scratch copy, count, swap, drop the
  previous database.

Each run is timed up to a CHECKPOINT, so each pays for flushing its own writes. Prints the
median of each and the ratio drill / restore (the issue's target: <= 1.0), and the drills'
own RTO (start to counted data) next to their wall time. Servers come from
STRONGBOX_TEST_PG_* as in the tests; a throwaway Django database and artifacts live under
--dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCE = "sbx_bench_drill_src"
ROW_BYTES = 165  # about, on disk, for the rows below


def _pg_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PGHOST", os.environ.get("STRONGBOX_TEST_PG_HOST", "127.0.0.1"))
    env.setdefault("PGPORT", os.environ.get("STRONGBOX_TEST_PG_PORT", "5432"))
    env.setdefault("PGUSER", os.environ.get("STRONGBOX_TEST_PG_USER", "postgres"))
    if os.environ.get("STRONGBOX_TEST_PG_PASSWORD"):
        env["PGPASSWORD"] = os.environ["STRONGBOX_TEST_PG_PASSWORD"]
    return env


def psql(statement: str, dbname: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-c", statement],
        env=_pg_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def database_size(name: str) -> int:
    value = psql(f"SELECT pg_database_size('{name}')")
    return int(value) if value else 0


def create_source(size_mb: int) -> None:
    """Two tables with a primary key and a secondary index each (as bench_restore.py)."""
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{SOURCE}'")  # noqa: S608
    if exists and 0.9 * size_mb * 2**20 < database_size(SOURCE) < 1.3 * size_mb * 2**20:
        print(f"reusing {SOURCE} ({database_size(SOURCE) / 2**20:.0f} MB)")
        return
    psql(f"DROP DATABASE IF EXISTS {SOURCE}")
    psql(f"CREATE DATABASE {SOURCE}")
    rows = size_mb * 2**20 // ROW_BYTES // 2
    for table in ("events", "ledger"):
        psql(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, account integer, kind text,"
            " payload text, amount numeric(12, 2), created_at timestamptz)",
            SOURCE,
        )
        fill = (
            " SELECT i, i % 10000, (ARRAY['open', 'close', 'pay', 'refund'])[1 + i % 4],"  # noqa: S608
            " md5(i::text) || ' ' || md5((i * 7)::text) || ' ' || repeat(chr(97 + i % 26), 12),"
            " (i % 100000) / 100.0, timestamptz '2026-01-01' + i * interval '1 second'"
            f" FROM generate_series(1, {rows}) i"
        )
        psql(f"INSERT INTO {table}" + fill, SOURCE)
        psql(f"CREATE INDEX ON {table} (account)", SOURCE)
    psql("VACUUM ANALYZE", SOURCE)
    print(f"created {SOURCE}: {database_size(SOURCE) / 2**20:.0f} MB")


def setup_django(workdir: Path) -> None:
    os.environ["STRONGBOX_VAR_DIR"] = str(workdir / "var")
    os.environ["STRONGBOX_SQLITE_PATH"] = str(workdir / "strongbox.sqlite3")
    os.environ["STRONGBOX_LOCAL_DESTINATION_ROOT"] = str(workdir / "artifacts")
    os.environ["STRONGBOX_TMP_DIR"] = str(workdir / "tmp")
    os.environ.setdefault("STRONGBOX_MASTER_KEY", "bench-master-key")
    os.environ.setdefault("STRONGBOX_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    import django  # noqa: PLC0415 - after the environment is set
    from django.core.management import call_command  # noqa: PLC0415

    django.setup()
    call_command("migrate", verbosity=0)


def strongbox_backup():
    from backups.services import backup_claim, backup_execute, backup_request  # noqa: PLC0415
    from destinations.models import Destination  # noqa: PLC0415
    from organizations.models import Database, Environment, Organisation, Project  # noqa: PLC0415

    env = _pg_env()
    org, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(organisation=org, slug="bench", name="Bench")
    environment, _ = Environment.objects.get_or_create(project=project, slug="bench", name="Bench")
    Destination.objects.get_or_create(
        organisation=org, name="Local", defaults={"kind": "local", "is_default": True}
    )
    database, _ = Database.objects.get_or_create(
        environment=environment,
        slug="main",
        defaults={
            "name": "main",
            "engine": "postgresql",
            "host": env["PGHOST"],
            "port": int(env["PGPORT"]),
            "username": env["PGUSER"],
            "password": env.get("PGPASSWORD", ""),
            "database_name": SOURCE,
        },
    )
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    backup = backup_execute(backup=backup_claim(backup_id=backup.id))
    if backup.status != "completed":
        raise SystemExit(f"backup failed: {backup.message}")
    return backup


def run_drill(backup) -> float:
    from drills.services import drill_claim, drill_execute, drill_request  # noqa: PLC0415

    drill = drill_request(database=backup.database, backup=backup, enqueue=False)
    done = drill_execute(drill=drill_claim(drill_id=drill.id))
    if done.status != "passed":
        raise SystemExit(f"drill failed: {done.message}")
    return done.rto_seconds


def run_restore(backup) -> None:
    from restores.services import restore_claim, restore_execute, restore_request  # noqa: PLC0415

    restore = restore_request(
        backup=backup, target_type="same", take_safety_backup=False, enqueue=False
    )
    done = restore_execute(restore=restore_claim(restore_id=restore.id))
    if done.status != "completed":
        raise SystemExit(f"restore failed: {done.message}")


def timed(func) -> tuple[float, object]:
    psql("CHECKPOINT")
    started = time.perf_counter()
    result = func()
    psql("CHECKPOINT")
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="strongbox-bench-drill-"))
    workdir.mkdir(parents=True, exist_ok=True)

    create_source(args.size_mb)
    setup_django(workdir)
    backup = strongbox_backup()
    print(f"backup: {backup.size / 2**20:.1f} MB stored, {sum(backup.row_counts.values())} rows")

    drills, restores, rtos = [], [], []
    for run in range(1, args.runs + 1):
        wall, rto = timed(lambda: run_drill(backup))
        drills.append(wall)
        rtos.append(rto)
        print(f"  run {run}: drill   {wall:7.2f}s (its RTO {rto:.2f}s)")
        wall, _ = timed(lambda: run_restore(backup))
        restores.append(wall)
        print(f"  run {run}: restore {wall:7.2f}s")
    drill, restore = statistics.median(drills), statistics.median(restores)
    print(
        f"size {database_size(SOURCE) / 2**20:.0f} MB, {args.runs} interleaved runs: "
        f"drill median {drill:.2f}s (RTO median {statistics.median(rtos):.2f}s), "
        f"restore median {restore:.2f}s, ratio drill/restore {drill / restore:.2f}"
    )


if __name__ == "__main__":
    main()
