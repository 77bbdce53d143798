"""The drills' metrics: the newest passed drill's recovery time and finish, per database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from drills.models import Drill, DrillPolicy, DrillStatus
from tests import factories
from tests.ops.test_metrics import database_labels, labels_of, scrape, value

pytestmark = pytest.mark.django_db


def _drill(database, *, status, finished, rto):
    return Drill.objects.create(
        environment=database.environment,
        database=database,
        status=status,
        started_at=finished - timedelta(seconds=rto),
        finished_at=finished,
        rto_seconds=rto,
    )


def test_the_drill_metrics_are_those_of_the_newest_passed_drill_of_each_database(
    client, environment, other_organisation
):
    now = timezone.now().replace(microsecond=0)
    main = factories.DatabaseFactory(environment=environment, slug="main")
    never = factories.DatabaseFactory(environment=environment, slug="never")
    theirs = factories.DatabaseFactory(
        environment=factories.EnvironmentFactory(
            project=factories.ProjectFactory(organisation=other_organisation)
        ),
        slug="theirs",
    )
    _drill(main, status=DrillStatus.PASSED, finished=now - timedelta(days=7), rto=40.0)
    _drill(main, status=DrillStatus.PASSED, finished=now - timedelta(days=1), rto=12.5)
    _drill(main, status=DrillStatus.FAILED, finished=now, rto=3.0)
    _drill(theirs, status=DrillStatus.PASSED, finished=now, rto=7.0)
    DrillPolicy.objects.create(database=never, enabled=True, cron="0 3 * * 0")
    factories.DatabaseFactory(environment=environment, slug="undrilled")

    families = scrape(client)

    rto = "strongbox_drill_rto_seconds"
    success = "strongbox_drill_last_success_timestamp_seconds"
    assert value(families, rto, **database_labels(main)) == 12.5
    assert (
        value(families, success, **database_labels(main)) == (now - timedelta(days=1)).timestamp()
    )
    assert value(families, rto, **database_labels(theirs)) == 7.0
    assert value(families, success, **database_labels(never)) == 0
    assert database_labels(never) not in labels_of(families, rto)
    assert {labels["database"] for labels in labels_of(families, success)} == {
        "main",
        "never",
        "theirs",
    }
