"""Benchmark: the backup list endpoints over 1,000,000 backups in PostgreSQL.

Creates a throwaway database ``sbx_bench_api`` (dropped at the end unless --keep), fills it
in SQL (generate_series: one organisation, 1,000 environments with one database each,
every backup copied to one destination), then times the first and the 1,000th page of each
list endpoint through the Django test client (median of a few runs, in-process, so the
figure is server time: URL routing, auth, SQL, serialisation, JSON rendering).

One environment/database is "big" (100,000 backups) so its lists have a 1,000th page;
the other 900,000 backups are spread over the 999 others.

Run: .venv/bin/python bench/bench_api.py [--rows 1000000] [--runs 5] [--keep]
Target: every page under 50 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "sbx_bench_api"
ENVIRONMENTS = 1000
BIG_ROWS = 100_000
PAGE = 20
DEEP_PAGE = 1000


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def fill(rows: int):
    """The tenancy rows through the ORM, the backups and copies in SQL."""
    from django.db import connection

    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project, Role
    from organizations.services import api_token_create

    org = Organisation.objects.create(name="Bench", slug="bench")
    project = Project.objects.create(organisation=org, name="Shop", slug="shop")
    Environment.objects.bulk_create(
        Environment(project=project, name=f"Env {i:04d}", slug=f"env-{i:04d}")
        for i in range(ENVIRONMENTS)
    )
    envs = list(Environment.objects.filter(project=project).order_by("slug"))
    Database.objects.bulk_create(
        Database(
            environment=env,
            name="main",
            slug="main",
            engine="postgresql",
            database_name="shop",
            version="16.4",
        )
        for env in envs
    )
    destination = Destination.objects.create(
        organisation=org, name="Bucket", kind="s3", config={"bucket": "bench-backups"}
    )
    _, token = api_token_create(organisation=org, name="bench", role=Role.VIEWER)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE bench_env AS
            SELECT row_number() OVER (ORDER BY e.slug) - 1 AS n, e.id AS env_id, d.id AS db_id
            FROM organizations_environment e
            JOIN organizations_database d ON d.environment_id = e.id
            """
        )
        cursor.execute("CREATE UNIQUE INDEX ON bench_env (n)")
        # Backup i belongs to the big environment 0 for i < BIG_ROWS, else to 1 + i % 999.
        cursor.execute(
            """
            INSERT INTO backups_backup (
                id, organisation_id, environment_id, database_id, name, description, kind,
                method, engine, engine_version, status, trigger, schedule_rules, task_id,
                compression, encrypted, key_id, size, checksum_sha256, row_counts, phase,
                phases, bytes_done, bytes_total, message, created_at, updated_at, started_at,
                completed_at, expires_at, verification_message
            )
            SELECT
                gen_random_uuid(), %(org)s, e.env_id, e.db_id,
                'bench-' || lpad(g::text, 7, '0'), 'Scheduled backup',
                CASE WHEN g %% 10 = 0 THEN 'full' ELSE 'database' END,
                'logical', 'postgresql', '16.4',
                CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'completed' END,
                'scheduled',
                '[{"interval": "daily", "minute": [30], "hour": [2]}]'::jsonb,
                md5(g::text), 'zstd', false, '', 1945663 + g, md5(g::text) || md5(g::text),
                '{}'::jsonb, '',
                '[{"name": "DUMP", "status": "SUCCESS", "duration_sec": 12.5},
                  {"name": "UPLOAD", "status": "SUCCESS", "duration_sec": 3.25}]'::jsonb,
                1945663 + g, 1945663 + g, E'Dumping\\nUploaded to 1 destination',
                t, t + interval '40 seconds', t + interval '1 second', t + interval '40 seconds',
                t + interval '30 days', ''
            FROM generate_series(0, %(rows)s - 1) AS g
            CROSS JOIN LATERAL (
                SELECT timestamptz '2020-01-01 00:00:00+00' + g * interval '2 minutes' AS t
            ) AS ts
            JOIN bench_env e ON e.n = CASE WHEN g < %(big)s THEN 0 ELSE 1 + g %% 999 END
            """,
            {"org": org.id, "rows": rows, "big": min(BIG_ROWS, rows)},
        )
        cursor.execute(
            """
            INSERT INTO backups_backupcopy (
                id, backup_id, destination_id, key, status, size, checksum_sha256, error,
                file_exists, last_verified_at, created_at, backup_created_at
            )
            SELECT gen_random_uuid(), b.id, %(dest)s, 'shop/' || b.name || '.pgdump.zst',
                   'stored', b.size, b.checksum_sha256, '', true, b.completed_at, b.completed_at,
                   b.created_at
            FROM backups_backup b
            """,
            {"dest": destination.id},
        )
        cursor.execute("VACUUM ANALYZE backups_backup")
        cursor.execute("VACUUM ANALYZE backups_backupcopy")
        cursor.execute("ANALYZE")
    print(f"filled {rows:,} backups and copies in {time.perf_counter() - started:.1f} s")
    big_env = envs[0]
    big_db = Database.objects.get(environment=big_env)
    return org, project, big_env, big_db, destination, token


def existing():
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project, Role
    from organizations.services import api_token_create

    org = Organisation.objects.get(slug="bench")
    project = Project.objects.get(organisation=org, slug="shop")
    env = Environment.objects.get(project=project, slug="env-0000")
    _, token = api_token_create(organisation=org, name="bench", role=Role.VIEWER)
    return (
        org,
        project,
        env,
        Database.objects.get(environment=env),
        Destination.objects.get(organisation=org),
        token,
    )


def deep_row(queryset, page: int, size: int):
    """The last row of page ``page - 1``: where a client that walked there would be."""
    return queryset.order_by("-created_at", "-id")[(page - 1) * size - 1]


def _median_ms(client, url, query, runs, status=200) -> tuple[float, float, float, int]:
    """Median wall, SQL and Python CPU milliseconds of ``runs`` requests, and the most
    queries one of them made (auth and tenancy included).

    The CPU figure is this process's own work (no waiting for the CPU or the
    database), a steadier measure than the wall time on a busy machine.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    walls, sqls, cpus, counts = [], [], [], []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started, cpu = time.perf_counter(), time.process_time()
            response = client.get(url, query)
            walls.append((time.perf_counter() - started) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        assert response.status_code == status, (url, response.status_code)
        sqls.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        counts.append(len(queries.captured_queries))
    return (
        statistics.median(walls),
        statistics.median(sqls),
        statistics.median(cpus),
        max(counts),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a database kept by --keep")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    if not args.reuse:
        recreate_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from api.base.pagination import Cursor, Keyset, encode_cursor
    from backups.models import Backup

    setup_test_environment()
    settings.DEBUG = False
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the floor's 404s
    try:
        if args.reuse:
            org, project, env, database, destination, token = existing()
        else:
            call_command("migrate", verbosity=0)
            org, project, env, database, destination, token = fill(args.rows)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

        env_rows = Backup.objects.filter(environment=env)
        env_db_rows = env_rows.filter(kind__in=["database", "base", "full"])
        seed000 = (
            f"/api/v3/organizations/bench/applications/shop/environments/{env.slug}"
            "/backups/database"
        )
        token000 = encode_cursor(Cursor(Keyset.of(deep_row(env_db_rows, DEEP_PAGE, PAGE))))
        org_rows = Backup.objects.filter(organisation=org)
        # Seed 002 lists database backups only (no full ones): its marker is one of those.
        org_db_rows = org_rows.filter(kind__in=["database", "base"], database__isnull=False)
        marker = deep_row(org_db_rows, DEEP_PAGE, PAGE).id
        token001 = encode_cursor(Cursor(Keyset.of(deep_row(org_rows, DEEP_PAGE, PAGE))))
        seed001 = f"/v1/backup-destinations/{destination.id}/backups"
        seed004 = f"/database/{database.id}/backup"
        cases = [
            ("seed 000 env backups (keyset)", seed000, {}, {"nextToken": token000}),
            ("seed 000 env backups, status filter", seed000, {"status": "failed"}, None),
            ("seed 001 destination backups (page)", seed001, {}, {"page": DEEP_PAGE}),
            ("seed 001 destination backups (cursor)", seed001, {}, {"cursor": token001}),
            ("seed 002 org backups (marker)", "/v1/database-backups", {}, {"marker": marker}),
            (
                "seed 002 org backups, name prefix",
                "/v1/database-backups",
                {"name": "bench-09*"},
                None,
            ),
            ("seed 004 database backups (page)", seed004, {}, {"page": DEEP_PAGE}),
        ]
        results = []
        for label, url, params, deep in cases:
            row = [label]
            for extra in ({}, deep):
                if extra is None:
                    row.append(None)
                    continue
                query = {**params, **extra}
                response = client.get(url, query)
                assert response.status_code == 200, (label, response.status_code)
                row.append(_median_ms(client, url, query, args.runs))
            results.append(row)
        # The fixed cost of any request on this machine: auth, routing, one lookup, a 404.
        floor = _median_ms(client, f"/database/{uuid.UUID(int=1)}/backup", {}, args.runs, 404)

        print(
            f"\n{args.rows:,} backups, {ENVIRONMENTS} environments, page size {PAGE}, "
            f"median of {args.runs} runs; ms of server time via the test client, "
            "as wall (SQL / Python CPU) and [queries per request]"
        )
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'endpoint':<42} {'page 1':>24} {f'page {DEEP_PAGE:,}':>24}")
        for label, first, deep in results:
            cells = []
            for cell in (first, deep):
                cells.append(
                    "-"
                    if cell is None
                    else f"{cell[0]:.0f} ({cell[1]:.0f} / {cell[2]:.0f}) [{cell[3]}]"
                )
            worst = max(first[0], deep[0] if deep else 0)
            flag = "" if worst < 50 else "  (over 50 ms)"
            print(f"{label:<42} {cells[0]:>24} {cells[1]:>24}{flag}")
        floor_text = f"{floor[0]:.0f} ({floor[1]:.0f} / {floor[2]:.0f}) [{floor[3]}]"
        print(f"{'floor: a 404 for an unknown database':<42} {floor_text:>24}")
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
