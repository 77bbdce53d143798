"""A drill whose count or drop waits longer than the heartbeat timeout (a big table, a
lock) keeps its heartbeat fresh: the reaper leaves a live worker's drill alone."""

from datetime import timedelta

import pytest

from drills.models import Drill, DrillPhase, DrillStatus
from drills.services import drill_request, drills_reap_stale
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.gates import PostgresGates, hold_in
from tests.fixtures.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.parametrize("phase", [DrillPhase.COMPARING, DrillPhase.DROPPING])
def test_a_drill_waiting_longer_than_the_heartbeat_timeout_is_not_reaped(
    phase, settings, environment, destination, postgres_spec, start_worker
):
    settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS = 3
    gates = PostgresGates()
    gates.fill(postgres_spec, "heartbeat")
    database = database_for(environment, postgres_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    worker = start_worker(own_queue=True)
    drill = drill_request(database=database, enqueue=False)
    worker.enqueue("drills.tasks.run_drill", str(drill.id))
    gate = hold_in(phase, gates, drill, worker)
    entered = Drill.objects.get(pk=drill.pk).heartbeat_at

    # Still held in the phase, past the timeout: the heartbeat moved on all the same.
    timeout = timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
    beating = wait_for(
        lambda: (d := Drill.objects.get(pk=drill.pk)).heartbeat_at > entered + 2 * timeout and d,
        timeout=60,
        message=lambda: f"the heartbeat to move on; log:\n{worker.output()[-3000:]}",
    )
    assert beating.phase == phase and beating.status == DrillStatus.RUNNING
    assert drills_reap_stale(now=beating.heartbeat_at + timeout / 2) == []

    gates.release(gate)
    done = wait_for(
        lambda: Drill.objects.filter(pk=drill.pk, status__in=["passed", "failed"]).first(),
        timeout=120,
        message=lambda: f"the drill to end; log:\n{worker.output()[-3000:]}",
    )
    # The gate's empty table counts 0 rows, as the backup recorded for it (none).
    assert done.status == DrillStatus.PASSED, done.message
