"""A drill asked for while the Redis broker is down: the request is recorded (202, not a
500), its task is enqueued again by the tick once the broker is back, and a real worker
runs it. (The ORM broker keeps its queue in the app database: nothing to take down.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.services import REQUEUE_AFTER
from drills.models import Drill, DrillStatus
from drills.services import drills_tick
from organizations.models import Role
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.helpers import database_exists
from tests.fixtures.databases import fill_postgres, table_checksums
from tests.fixtures.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_drill_requested_while_the_broker_is_down_is_recorded_and_runs_later(
    client_for, organisation, environment, destination, postgres_spec, own_redis, start_worker
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    before = table_checksums(postgres_spec)

    own_redis.kill()
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/databases/{database.id}/drills", {}, format="json"
    )
    assert response.status_code == 202, response.content
    drill = Drill.objects.get(pk=response.json()["id"])
    assert drill.status == DrillStatus.SCHEDULED and drill.task_id == ""

    own_redis.start()  # empty: the task never reached it
    worker = start_worker(REDIS_URL=own_redis.url)
    result = drills_tick(now=timezone.now() + REQUEUE_AFTER + timedelta(seconds=1))
    assert [d.pk for d in result.requeued] == [drill.pk]

    drill = wait_for(
        lambda: Drill.objects.filter(pk=drill.pk, status__in=["passed", "failed"]).first(),
        timeout=120,
        message=lambda: f"the worker to run the drill; log:\n{worker.output()[-3000:]}",
    )
    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.restored_rows == 50 + 25 + 100
    assert not database_exists(postgres_spec, drill.throwaway_name)
    assert table_checksums(postgres_spec) == before
