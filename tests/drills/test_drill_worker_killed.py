"""A real django-q2 worker SIGKILLed in each phase of a PostgreSQL drill (restoring into the
throwaway database, comparing, dropping): the reaper fails the drill saying the worker died
and where, drops the throwaway database and the job's directory; nothing decrypted stays on
disk, the source is untouched, and the next drill of the database passes.

Each phase is reached without timing. The loader (pg_restore, in a process group of its
own) is stopped with SIGSTOP once it is connected to the throwaway database, so the load
cannot end while the test sets a gate; the worker is then held in the phase by a lock the
phase must wait for: an ACCESS EXCLUSIVE lock on a table the test adds to the throwaway
database (the row count waits on it), or an uncommitted ``COMMENT ON DATABASE`` (its lock
on the database lets connections in but makes ``DROP DATABASE`` wait). The test kills the
worker once the drill recorded the phase and the server shows the worker's query waiting.
"""

from __future__ import annotations

import os
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone
from psycopg import sql

from alerts.models import Alert, AlertKind
from backups import workdirs
from backups.engines.postgresql import PostgreSQLEngine
from drills.models import Drill, DrillPhase, DrillStatus
from drills.services import drill_job, drill_request, drills_tick
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.helpers import database_exists, files_holding, loader_groups
from tests.fixtures.databases import TABLES, fill_postgres, postgres_server, table_checksums
from tests.fixtures.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]

SECRET_ROWS = 50_000
ALL_TABLES = (*TABLES, "secrets")
FINAL = (DrillStatus.PASSED, DrillStatus.FAILED)


def _source_with_secrets(make_postgres_database, marker: str):
    source = make_postgres_database()
    counts = fill_postgres(source, rows=300)
    with PostgreSQLEngine().connect(source) as conn:
        conn.execute(
            "CREATE TABLE secrets AS SELECT i AS id, %s || '-' || md5(i::text) AS payload"
            " FROM generate_series(1, %s) i",
            (marker, SECRET_ROWS),
        )
        conn.execute("ALTER TABLE secrets ADD PRIMARY KEY (id)")
    return source, sum(counts.values()) + SECRET_ROWS


def _server_shows(query: str, *params) -> bool:
    with PostgreSQLEngine().connect(postgres_server("postgres")) as conn:
        return conn.execute(query, params).fetchone() is not None


def _loading(throwaway: str) -> list[int]:
    """The loader's process groups once its pg_restore is connected to the throwaway."""
    connected = _server_shows(
        "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = 'pg_restore'",
        throwaway,
    )
    return loader_groups(throwaway) if connected else []


def _waiting(pattern: str) -> bool:
    """A query like ``pattern`` is waiting on a lock (the worker's, held by the gate)."""
    return _server_shows(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
        pattern,
    )


def _hold_the_count(throwaway: str) -> psycopg.Connection:
    """A table of the test's own in the throwaway database, locked: the count waits on it."""
    conn = PostgreSQLEngine().connect(postgres_server(throwaway))
    conn.execute("CREATE TABLE zz_gate (id integer)")
    conn.commit()
    conn.execute("LOCK TABLE zz_gate IN ACCESS EXCLUSIVE MODE")
    return conn


def _hold_the_drop(throwaway: str) -> psycopg.Connection:
    """An uncommitted COMMENT ON DATABASE: its lock on the database (SHARE UPDATE EXCLUSIVE)
    lets connections in and makes DROP DATABASE wait until it ends."""
    conn = PostgreSQLEngine().connect(postgres_server("postgres"))
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'gate'").format(sql.Identifier(throwaway)))
    return conn


GATES = {
    DrillPhase.RESTORING: (None, None),
    DrillPhase.COMPARING: (_hold_the_count, "%count(*)%zz_gate%"),
    DrillPhase.DROPPING: (_hold_the_drop, "DROP DATABASE%{throwaway}%"),
}


def _until_final(drill: Drill, worker) -> Drill:
    return wait_for(
        lambda: (d := Drill.objects.get(pk=drill.pk)).status in FINAL and d,
        timeout=180,
        message=lambda: f"drill {drill.id} to end; worker log:\n{worker.output()[-3000:]}",
    )


@pytest.mark.parametrize("phase", [DrillPhase.RESTORING, DrillPhase.COMPARING, DrillPhase.DROPPING])
def test_a_drill_whose_worker_is_killed_fails_and_leaves_nothing_behind(
    phase, environment, destination, make_postgres_database, start_worker
):
    marker = f"sbx-secret-{uuid.uuid4().hex}"
    source, expected_rows = _source_with_secrets(make_postgres_database, marker)
    database = database_for(environment, source)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == "completed" and backup.encrypted, backup.message
    before = table_checksums(source, tables=ALL_TABLES)
    server = postgres_server()

    worker = start_worker(own_queue=True)
    drill = drill_request(database=database, enqueue=False)
    throwaway = f"strongbox_drill_{drill.short_id}"
    worker.enqueue("drills.tasks.run_drill", str(drill.id))
    (loader,) = wait_for(
        lambda: _loading(throwaway),
        timeout=120,
        interval=0.05,
        message=lambda: f"the load to start; worker log:\n{worker.output()[-3000:]}",
    )
    os.killpg(loader, signal.SIGSTOP)  # the load cannot end now
    assert Drill.objects.get(pk=drill.pk).phase == DrillPhase.RESTORING
    hold, pattern = GATES[phase]
    gate = hold(throwaway) if hold else None
    if gate is not None:
        os.killpg(loader, signal.SIGCONT)
        wait_for(
            lambda: (
                Drill.objects.get(pk=drill.pk).phase == phase
                and _waiting(pattern.format(throwaway=throwaway))
            ),
            timeout=120,
            interval=0.05,
            message=lambda: f"the drill to wait in {phase}; log:\n{worker.output()[-3000:]}",
        )

    worker.kill()
    worker.stop()
    killed = Drill.objects.get(pk=drill.pk)
    assert (killed.status, killed.phase) == (DrillStatus.RUNNING, phase)
    assert database_exists(server, throwaway)
    tmp = Path(settings.STRONGBOX_TMP_DIR)
    job = workdirs.job_path(tmp, drill_job(drill))
    # What the dead worker left (the loader's options, the spooled dump head) is not
    # readable data: nothing holds the rows or a pg_dump header.
    assert files_holding(tmp, marker.encode(), b"PGDMP") == []
    if gate is not None:
        gate.rollback()
        gate.close()

    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    result = drills_tick(now=later, enqueue=False)

    assert [d.pk for d in result.reaped] == [drill.pk]
    reaped = Drill.objects.get(pk=drill.pk)
    assert reaped.status == DrillStatus.FAILED
    assert f"stopped responding while {reaped.get_phase_display()}" in reaped.message
    assert "probably died" in reaped.message and throwaway in reaped.message
    assert not database_exists(server, throwaway)
    wait_for(lambda: not loader_groups(throwaway), timeout=30, message="the loader to end")
    assert not job.exists()
    assert list(tmp.iterdir()) == []
    assert table_checksums(source, tables=ALL_TABLES) == before
    alert = Alert.objects.get(kind=AlertKind.DRILL_FAILED, resolved_at=None)
    assert "probably died" in alert.message

    # The database is free for its next drill, which a new worker runs and passes.
    after = start_worker(own_queue=True)
    again = drill_request(database=database, enqueue=False)
    after.enqueue("drills.tasks.run_drill", str(again.id))
    again = _until_final(again, after)
    assert again.status == DrillStatus.PASSED, again.message
    assert again.restored_rows == expected_rows
    assert not database_exists(server, again.throwaway_name)
    assert table_checksums(source, tables=ALL_TABLES) == before
    alert.refresh_from_db()
    assert alert.resolved_at is not None
