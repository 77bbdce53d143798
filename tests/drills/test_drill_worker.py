"""A drill requested through the API is run by a real django-q2 worker (``qcluster``)."""

import pytest

from drills.models import Drill, DrillStatus
from organizations.models import Role
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.helpers import database_exists
from tests.fixtures.databases import fill_postgres, table_checksums
from tests.fixtures.worker import wait_for


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_drill_an_operator_requested(
    client_for, organisation, environment, destination, postgres_spec, start_worker
):
    fill_postgres(postgres_spec, rows=80)
    database = database_for(environment, postgres_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    before = table_checksums(postgres_spec)

    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/databases/{database.id}/drills", {}, format="json"
    )
    assert response.status_code == 202, response.content
    worker = start_worker()

    drill = wait_for(
        lambda: (
            Drill.objects.filter(pk=response.json()["id"], status__in=["passed", "failed"])
            .select_related("backup")
            .first()
        ),
        timeout=120,
        message=f"the worker to finish the drill; log:\n{worker.output()}",
    )
    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.restored_rows == 80 + 40 + 160
    assert not database_exists(postgres_spec, drill.throwaway_name)
    assert table_checksums(postgres_spec) == before
