"""A real django-q2 worker SIGKILLed in each phase of a PostgreSQL or MariaDB drill
(restoring into the throwaway database, comparing, dropping): the reaper fails the drill
saying the worker died and where, drops the throwaway database and the job's directory;
nothing decrypted stays on disk, the source is untouched, and the next drill passes.

Each phase is reached by state, not by sleeping. The loader (pg_restore or the mariadb
client, in a process group of its own) is stopped with SIGSTOP as soon as it runs, so the
load cannot end while the test sets a gate; the worker is then held in the phase by a lock
the phase must wait for: a lock on a table the test adds to the throwaway database (the
row count waits on it), or a lock that lets the count in but makes ``DROP DATABASE`` wait
(on PostgreSQL an uncommitted ``COMMENT ON DATABASE``, on MariaDB a shared metadata lock).
The test kills the worker once the drill recorded the phase and the server shows the
worker's query waiting (``tests/drills/gates.py``). The one timed step: catching the loader
while it runs, which the 50,000-row table makes last a second or more.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from alerts.models import Alert, AlertKind
from backups import workdirs
from drills.models import Drill, DrillPhase, DrillStatus
from drills.services import drill_job, drill_request, drills_tick
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.gates import ALL_TABLES, MariaDBGates, PostgresGates, hold_in
from tests.drills.helpers import database_exists, files_holding, loader_groups
from tests.fixtures.databases import table_checksums
from tests.fixtures.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FINAL = (DrillStatus.PASSED, DrillStatus.FAILED)
ENGINES = {"postgresql": PostgresGates(), "mariadb": MariaDBGates()}
MAKERS = {"postgresql": "make_postgres_database", "mariadb": "make_mariadb_database"}


def _until_final(drill: Drill, worker) -> Drill:
    return wait_for(
        lambda: (d := Drill.objects.get(pk=drill.pk)).status in FINAL and d,
        timeout=180,
        message=lambda: f"drill {drill.id} to end; worker log:\n{worker.output()[-3000:]}",
    )


@pytest.mark.parametrize("phase", [DrillPhase.RESTORING, DrillPhase.COMPARING, DrillPhase.DROPPING])
@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_a_drill_whose_worker_is_killed_fails_and_leaves_nothing_behind(
    engine, phase, environment, destination, request, start_worker
):
    gates = ENGINES[engine]
    marker = f"sbx-secret-{uuid.uuid4().hex}"
    source = request.getfixturevalue(MAKERS[engine])()
    expected_rows = gates.fill(source, marker)
    database = database_for(environment, source)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == "completed" and backup.encrypted, backup.message
    before = table_checksums(source, tables=ALL_TABLES)
    server = gates.server()

    worker = start_worker(own_queue=True)
    drill = drill_request(database=database, enqueue=False)
    throwaway = f"strongbox_drill_{drill.short_id}"
    worker.enqueue("drills.tasks.run_drill", str(drill.id))
    gate = hold_in(phase, gates, drill, worker)

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
        gates.release(gate)

    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    result = drills_tick(now=later, enqueue=False)

    assert [d.pk for d in result.reaped] == [drill.pk]
    reaped = Drill.objects.get(pk=drill.pk)
    assert reaped.status == DrillStatus.FAILED
    assert f"stopped responding while {reaped.get_phase_display()}" in reaped.message
    assert "probably died" in reaped.message and throwaway in reaped.message
    # The killed worker's own statement may still be ending on the server (a DROP that
    # waited on the gate): gone within seconds, by it or by the reaper.
    wait_for(lambda: not database_exists(server, throwaway), timeout=30, message="the drop")
    wait_for(lambda: not loader_groups(throwaway, gates.loaders), timeout=30, message="the loader")
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
