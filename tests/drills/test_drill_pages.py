"""Drills on the pages: the environment page lists its databases' drills; the include and
its selector are ready for the database page."""

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from drills.models import Drill, DrillPolicy, DrillStatus
from drills.selectors import drill_list_context
from tests import factories

pytestmark = pytest.mark.django_db


def _drill(database, *, status, rto, days_ago, message=""):
    finished = timezone.now() - timedelta(days=days_ago)
    return Drill.objects.create(
        environment=database.environment,
        database=database,
        status=status,
        started_at=finished - timedelta(seconds=rto),
        finished_at=finished,
        rto_seconds=rto,
        expected_rows=140,
        restored_rows=140 if status == DrillStatus.PASSED else 97,
        message=message,
    )


def test_the_environment_page_lists_the_drills_of_its_databases_only(
    client, viewer, environment, other_organisation
):
    main = factories.DatabaseFactory(environment=environment, name="Main DB")
    _drill(main, status=DrillStatus.PASSED, rto=12.34, days_ago=2)
    _drill(
        main,
        status=DrillStatus.FAILED,
        rto=3.0,
        days_ago=1,
        message="The restored data does not match the backup: Main DB: public.orders: 140 "
        "recorded, 97 restored.",
    )
    theirs = factories.DatabaseFactory(
        environment=factories.EnvironmentFactory(
            project=factories.ProjectFactory(organisation=other_organisation)
        ),
        name="Their DB",
    )
    _drill(theirs, status=DrillStatus.PASSED, rto=99.0, days_ago=1)
    client.force_login(viewer)

    page = client.get(f"/projects/{environment.project_id}/environments/{environment.id}/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Restore drills" in html
    assert "12.3 s" in html and "public.orders: 140 recorded, 97 restored" in html
    assert "Main DB" in html
    assert "Their DB" not in html and "99.0 s" not in html


def test_the_database_include_draws_the_recovery_time_trend_and_the_policy(
    environment, organisation
):
    database = factories.DatabaseFactory(environment=environment)
    for days_ago, rto in ((3, 20.0), (2, 10.0), (1, 15.0)):
        _drill(database, status=DrillStatus.PASSED, rto=rto, days_ago=days_ago)
    DrillPolicy.objects.create(
        database=database, enabled=True, cron="0 3 * * 0", rto_objective_seconds=900
    )

    context = drill_list_context(organisation=organisation, database=database)
    html = render_to_string("drills/_drill_list.html", context)

    assert [d.rto_seconds for d in context["drills"]] == [15.0, 10.0, 20.0]
    assert "Recovery time of the last 3 passed drills: 20.0 s, 10.0 s, 15.0 s" in html
    assert "<polyline" in html
    assert "<code>0 3 * * 0</code>" in html and "objective 900 s" in html
