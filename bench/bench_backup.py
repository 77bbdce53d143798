"""Benchmark a Strongbox backup of a PostgreSQL database against the shell pipeline and
django-dbbackup, in one run, and print the ratios.

    .venv/bin/python bench/bench_backup.py [--sizes 250,500] [--repeat 2] [--no-s3]
                                           [--no-dbbackup] [--keep]

Cases, each in its own process (wall time, CPU time of it and its children, peak RSS):
  (a) `pg_dump -Fc -Z0 | zstd -3 -T2 > file`: the baseline
  (b) a Strongbox backup to a local destination (the worker's own peak RSS is reported)
  (c) the same to S3 (moto's S3-protocol server on loopback)
  (d) django-dbbackup (`dbbackup --compress`: a dump to a temporary file, then gzip)
The database is filled with random words (compresses ~2-3x, like real text; pgbench data
compresses ~100x and would hide the cost of compression).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ZSTD_LEVEL = 3


# --- the database ------------------------------------------------------------------------


def fill_database(name: str, size_mb: int) -> int:
    import psycopg

    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    rng = random.Random(size_mb)
    vocab = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 11)))
        for _ in range(20000)
    ]
    with psycopg.connect(**PG, dbname=name, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events (id bigserial PRIMARY KEY, title text, body text,"
            " email text, happened_at timestamptz, amount numeric(12,2), flag boolean)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS customers (id bigserial PRIMARY KEY, name text)")
        target = size_mb * 1024 * 1024
        while conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] < target:
            with conn.cursor().copy(
                "COPY events (title, body, email, happened_at, amount, flag) FROM STDIN"
            ) as copy:
                for _ in range(50_000):
                    copy.write_row(
                        (
                            " ".join(rng.choices(vocab, k=4)),
                            " ".join(rng.choices(vocab, k=rng.randint(10, 40))),
                            f"{rng.choice(vocab)}@{rng.choice(vocab)}.com",
                            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 12:00:00+00",
                            rng.randint(0, 10**7) / 100,
                            rng.random() < 0.1,
                        )
                    )
        conn.execute("ANALYZE")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


# --- measuring -----------------------------------------------------------------------------


def measure(argv, env=None, shell=False) -> dict:
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, stdout=subprocess.PIPE)  # noqa: S602
    out, _ = proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv!r} failed with {proc.returncode}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "stdout": out.decode(), "usage": usage}


def run_case(label, argv, repeat, env=None, shell=False) -> dict:
    best = None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = measure(argv, env=env, shell=shell)
        after = result["usage"]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        extra = (
            json.loads(result["stdout"].strip().splitlines()[-1])
            if result["stdout"].strip()
            else {}
        )
        row = {"label": label, "wall": result["wall"], "cpu": cpu, **extra}
        if best is None or row["wall"] < best["wall"]:
            best = row
    return best


# --- the child that runs one Strongbox backup -----------------------------------------------


def child_backup(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from backups.models import BackupStatus
    from backups.services import backup_claim, backup_execute, backup_request
    from organizations.models import Database

    database = Database.objects.select_related("environment").get(pk=args.database_id)
    started = time.monotonic()  # what a running worker spends: no interpreter or Django start
    (backup,) = backup_request(
        environment=database.environment,
        kind="database",
        database=database,
        destination_ids=[args.destination_id],
    )
    done = backup_execute(backup=backup_claim(backup_id=backup.id))
    in_worker = time.monotonic() - started
    if done.status != BackupStatus.COMPLETED:
        raise SystemExit(done.message)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"worker_rss_mb": round(rss, 1), "artifact": done.size, "in_worker": in_worker})
    )


def child_setup(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project

    org, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(
        organisation=org, slug="bench", defaults={"name": "Bench"}
    )
    env, _ = Environment.objects.get_or_create(project=project, slug="pg", defaults={"name": "PG"})
    ids = {}
    for name in args.databases.split(","):
        db, _ = Database.objects.get_or_create(
            environment=env,
            slug=name.replace("_", "-"),
            defaults={
                "name": name,
                "engine": "postgresql",
                "host": PG["host"],
                "port": PG["port"],
                "username": PG["user"],
                "database_name": name,
            },
        )
        ids[name] = str(db.id)
    local, _ = Destination.objects.get_or_create(
        organisation=org, name="local", defaults={"kind": "local"}
    )
    ids["local"] = str(local.id)
    if args.s3_endpoint:
        s3, _ = Destination.objects.update_or_create(
            organisation=org,
            name="s3",
            defaults={
                "kind": "s3",
                "config": {
                    "bucket": "bench",
                    "endpoint_url": args.s3_endpoint,
                    "region": "us-east-1",
                },
                "secrets": {"access_key_id": "bench", "secret_access_key": "bench"},
            },
        )
        ids["s3"] = str(s3.id)
    print(json.dumps(ids))


# --- main ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="250,500")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--no-dbbackup", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--child", choices=["backup", "setup"])
    parser.add_argument("--database-id")
    parser.add_argument("--destination-id")
    parser.add_argument("--databases")
    parser.add_argument("--s3-endpoint")
    args = parser.parse_args()
    if args.child == "backup":
        return child_backup(args)
    if args.child == "setup":
        return child_setup(args)

    work = Path(tempfile.mkdtemp(prefix="strongbox-bench-"))
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        STRONGBOX_VAR_DIR=str(work / "var"),
        STRONGBOX_SQLITE_PATH=str(work / "app.sqlite3"),
        STRONGBOX_LOCAL_DESTINATION_ROOT=str(work / "artifacts"),
        STRONGBOX_COMPRESSION_LEVEL=str(ZSTD_LEVEL),
        STRONGBOX_MASTER_KEY="",
        AWS_EC2_METADATA_DISABLED="true",
    )
    py = sys.executable
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [f"sbx_bench_{s}mb" for s in sizes]
    moto = None
    try:
        for size, name in zip(sizes, names, strict=True):
            t0 = time.monotonic()
            actual = fill_database(name, size)
            print(
                f"database {name}: {actual / 2**20:.0f} MB "
                f"({time.monotonic() - t0:.0f}s to prepare)"
            )
        subprocess.run([py, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True)
        s3_endpoint = ""
        if not args.no_s3:
            port = free_port()
            moto = subprocess.Popen(
                [str(Path(py).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            s3_endpoint = f"http://127.0.0.1:{port}"
            time.sleep(2)
            import boto3

            boto3.client(
                "s3",
                endpoint_url=s3_endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106 - moto accepts anything
                region_name="us-east-1",
            ).create_bucket(Bucket="bench")
        ids = json.loads(
            subprocess.run(
                [
                    py,
                    __file__,
                    "--child",
                    "setup",
                    "--databases",
                    ",".join(names),
                    *(["--s3-endpoint", s3_endpoint] if s3_endpoint else []),
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rows = []
        for size, name in zip(sizes, names, strict=True):
            out = work / "baseline.pgdump.zst"
            # The baseline is a shell pipeline on purpose: it is what an operator would run.
            baseline = run_case(  # noqa: S604
                f"(a) pg_dump -Fc -Z0 | zstd -{ZSTD_LEVEL} -T2",
                f"pg_dump -Fc -Z0 -h {PG['host']} -p {PG['port']} -U {PG['user']} {name} "
                f"| zstd -q -{ZSTD_LEVEL} -T2 > {out}",
                args.repeat,
                shell=True,
            )
            baseline["artifact"] = out.stat().st_size
            cases = [baseline]
            for label, dest in [("(b) Strongbox -> local", "local"), ("(c) Strongbox -> S3", "s3")]:
                if dest not in ids:
                    continue
                cases.append(
                    run_case(
                        label,
                        [
                            py,
                            __file__,
                            "--child",
                            "backup",
                            "--database-id",
                            ids[name],
                            "--destination-id",
                            ids[dest],
                        ],
                        args.repeat,
                        env=env,
                    )
                )
                shutil.rmtree(work / "artifacts", ignore_errors=True)
            if not args.no_dbbackup:
                dbb_env = dict(
                    os.environ,
                    PYTHONPATH=str(ROOT / "bench"),
                    BENCH_PG_NAME=name,
                    BENCH_OUT_DIR=str(work / "dbbackup"),
                    DJANGO_SETTINGS_MODULE="dbbackup_settings",
                )
                (work / "dbbackup").mkdir(exist_ok=True)
                cases.append(
                    run_case(
                        "(d) django-dbbackup --compress",
                        [py, "-m", "django", "dbbackup", "--compress", "--noinput"],
                        1,
                        env=dbb_env,
                    )
                )
                shutil.rmtree(work / "dbbackup", ignore_errors=True)
            for case in cases:
                case["size_mb"] = size
            rows.extend(cases)
        print_table(rows, sizes)
    finally:
        if moto:
            moto.terminate()
        if not args.keep:
            import psycopg

            with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
                for name in names:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def print_table(rows, sizes) -> None:
    print()
    print(
        f"{'case':38} {'DB MB':>6} {'wall s':>7} {'cpu s':>7} "
        f"{'worker RSS MB':>14} {'artifact MB':>12}"
    )
    for r in rows:
        rss = f"{r['worker_rss_mb']:.0f}" if "worker_rss_mb" in r else "-"
        art = f"{r['artifact'] / 2**20:.0f}" if r.get("artifact") else "-"
        print(
            f"{r['label']:38} {r['size_mb']:>6} {r['wall']:>7.2f} {r['cpu']:>7.2f} "
            f"{rss:>14} {art:>12}"
        )
    print()
    for size in sizes:
        by = {r["label"][:3]: r for r in rows if r["size_mb"] == size}
        a = by["(a)"]["wall"]
        parts = [f"{size} MB:"]
        if "(b)" in by:
            parts.append(f"(b)/(a) wall = {by['(b)']['wall'] / a:.2f} (target <= 1.10)")
            if "in_worker" in by["(b)"]:
                # Without the child's interpreter and Django start-up, which a long-running
                # worker pays once, not per backup.
                in_worker = by["(b)"]["in_worker"]
                parts.append(f"(b) in a running worker: {in_worker:.2f} s = {in_worker / a:.2f}")
        if "(c)" in by:
            parts.append(f"(c)/(a) = {by['(c)']['wall'] / a:.2f}")
        if "(d)" in by and "(b)" in by:
            parts.append(f"(d)/(b) = {by['(d)']['wall'] / by['(b)']['wall']:.1f}x (target >= 3)")
        print("  ".join(parts))


if __name__ == "__main__":
    main()
