"""The retention preview pages its decisions; enforcement deletes what it shows, in chunks.

Histories are made in bulk (``bulk_create`` of factory-built rows): hourly backups spread
over three databases of one environment, a full backup every night, the odd failure and
manual backup, and a second organisation's environment beside them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups import tasks as backup_tasks
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.services import backups_delete_batch
from organizations.models import Role
from schedules import enforcement
from schedules.enforcement import retention_enforce, retention_plan_for
from tests import factories
from tests.fixtures.queue import queued_tasks

pytestmark = pytest.mark.django_db

POLICY = {"retain_db_hourly": 24, "retain_db_daily": 7, "retain_full_daily": 3}


def preview_url(environment) -> str:
    return f"/api/environments/{environment.id}/backup-schedule/retention-preview"


def bulk_history(environment, count: int, *, end: datetime | None = None) -> list:
    """``count`` backups, one an hour up to ``end`` (default: the last full hour), rotating
    over three databases, with a full backup at 03:00, every 97th failed and every 50th
    manual; returns the databases."""
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    databases = [
        factories.DatabaseFactory(environment=environment, name=f"DB {n}") for n in range(3)
    ]
    rows = []
    for n in range(count):
        created_at = end - timedelta(hours=n)
        full = created_at.hour == 3
        rows.append(
            factories.BackupFactory.build(
                environment=environment,
                organisation=environment.project.organisation,
                database=None if full else databases[n % 3],
                kind=BackupKind.FULL if full else BackupKind.DATABASE,
                trigger=BackupTrigger.MANUAL if n % 50 == 49 else BackupTrigger.SCHEDULED,
                status=BackupStatus.FAILED if n % 97 == 96 else BackupStatus.COMPLETED,
                created_at=created_at,
                size=1000 + n,
            )
        )
    Backup.objects.bulk_create(rows, batch_size=1000)
    return databases


def pages(client, environment, *, limit: int, body: dict | None = None) -> list[dict]:
    """Every page of the preview, ``limit`` decisions at a time."""
    found, offset = [], 0
    while True:
        response = client.post(
            f"{preview_url(environment)}?limit={limit}&offset={offset}", body or {}, format="json"
        )
        assert response.status_code == 200, response.json()
        page = response.json()
        found.append(page)
        offset += limit
        if offset >= page["count"]:
            return found


def newest_first(page: dict) -> list[str]:
    """The page's decisions in the plan's order (newest first), kept and deleted together."""
    rows = page["kept"] + page["deleted"]
    rows.sort(key=lambda row: (datetime.fromisoformat(row["createdAt"]), row["id"]), reverse=True)
    return [row["id"] for row in rows]


TOTALS = ("deletedCount", "keptCount", "bytesFreed", "totals", "count", "policy", "timezone")


@pytest.fixture
def history(environment):
    factories.ScheduleFactory(environment=environment, timezone="Europe/London", **POLICY)
    return bulk_history(environment, 600)


def test_pages_concatenate_to_the_whole_decision_list_with_the_same_totals(
    client_for, organisation, environment, history
):
    client = client_for(organisation, Role.VIEWER)
    whole = pages(client, environment, limit=1000)
    assert len(whole) == 1
    everything = newest_first(whole[0])

    paged = pages(client, environment, limit=37)

    assert len(paged) == math.ceil(600 / 37)
    assert [id for page in paged for id in newest_first(page)] == everything
    for page in paged:
        assert {name: page[name] for name in TOTALS} == {name: whole[0][name] for name in TOTALS}
    assert whole[0]["count"] == 600
    assert whole[0]["keptCount"] + whole[0]["deletedCount"] == 600
    lines = whole[0]["totals"]["byDatabase"]
    assert [line["name"] for line in lines] == ["DB 0", "DB 1", "DB 2", "Full and files backups"]
    assert sum(line["deleted"] for line in lines) == whole[0]["deletedCount"]
    assert (paged[-1]["limit"], paged[-1]["offset"]) == (37, 37 * (len(paged) - 1))


def test_the_default_page_is_the_newest_hundred(client_for, organisation, environment, history):
    client = client_for(organisation, Role.VIEWER)
    first = client.post(preview_url(environment), {}, format="json").json()
    whole = pages(client, environment, limit=1000)[0]

    assert (first["limit"], first["offset"], first["count"]) == (100, 0, 600)
    assert newest_first(first) == newest_first(whole)[:100]


def test_a_page_past_the_end_is_empty_with_the_totals(
    client_for, organisation, environment, history
):
    response = client_for(organisation, Role.VIEWER).post(
        f"{preview_url(environment)}?offset=600", {}, format="json"
    )

    assert response.status_code == 200
    data = response.json()
    assert data["kept"] == data["deleted"] == []
    assert data["count"] == 600 and data["keptCount"] + data["deletedCount"] == 600


def test_a_proposal_is_paged_too(client_for, organisation, environment, history):
    client = client_for(organisation, Role.VIEWER)
    body = {"retainDbHourly": 0, "retainDbDaily": 2}

    paged = pages(client, environment, limit=250, body=body)

    assert len(paged) == 3
    assert {page["deletedCount"] for page in paged} == {paged[0]["deletedCount"]}
    assert sum(len(page["deleted"]) for page in paged) == paged[0]["deletedCount"]
    assert paged[0]["policy"]["retainDbDaily"] == 2


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=first", "offset"),
        (f"offset={10**12}", "offset"),
    ],
)
def test_a_bad_limit_or_offset_is_a_400_naming_it(
    client_for, organisation, environment, query, param
):
    response = client_for(organisation, Role.VIEWER).post(
        f"{preview_url(environment)}?{query}", {}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] and param in error["fields"]
    assert param in error["message"]


def test_a_page_larger_than_a_thousand_is_a_thousand(client_for, organisation, environment):
    bulk_history(environment, 1200)

    response = client_for(organisation, Role.VIEWER).post(
        f"{preview_url(environment)}?limit=5000", {}, format="json"
    )

    assert response.status_code == 200
    data = response.json()
    assert data["limit"] == 1000
    assert len(data["kept"]) + len(data["deleted"]) == 1000
    assert data["count"] == 1200


def test_another_organisations_environment_is_a_404_and_never_in_our_preview(
    client_for, organisation, environment, history, other_organisation
):
    theirs = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    bulk_history(theirs, 300)
    client = client_for(organisation, Role.VIEWER)

    ours = pages(client, environment, limit=1000)[0]

    assert client.post(preview_url(theirs), {}, format="json").status_code == 404
    their_ids = {str(pk) for pk in Backup.objects.filter(environment=theirs).values_list("id")}
    assert not their_ids & set(newest_first(ours))
    assert ours["count"] == 600
    # And theirs, asked by them, holds only their own.
    mine = client_for(other_organisation, Role.VIEWER)
    assert pages(mine, theirs, limit=1000)[0]["count"] == 300


def test_the_query_count_does_not_grow_with_the_history(client_for, organisation, project):
    counts = {}
    for size in (10, 2000):
        environment = factories.EnvironmentFactory(project=project)
        factories.ScheduleFactory(environment=environment, **POLICY)
        bulk_history(environment, size)
        client = client_for(organisation, Role.VIEWER)
        for query in ("", "?limit=1000&offset=0", f"?offset={size - 5}"):
            with CaptureQueriesContext(connection) as queries:
                response = client.post(f"{preview_url(environment)}{query}", {}, format="json")
            assert response.status_code == 200
            counts.setdefault(size, []).append(len(queries))

    # The same requests, in the same order (a token's first use records it: one more).
    assert counts[10] == counts[2000], counts
    assert max(counts[10]) <= 9, counts


def test_enforcement_deletes_exactly_what_the_preview_shows_in_bounded_chunks(
    client_for,
    organisation,
    environment,
    other_organisation,
    django_capture_on_commit_callbacks,
):
    factories.ScheduleFactory(environment=environment, timezone="Europe/London", **POLICY)
    bulk_history(environment, 3000)
    theirs = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    factories.ScheduleFactory(environment=theirs, **POLICY)
    bulk_history(theirs, 200)
    restored = Backup.objects.filter(environment=environment, status="completed").order_by(
        "created_at"
    )[0]
    factories.RestoreFactory(backup=restored, status="in-progress")
    client = client_for(organisation, Role.VIEWER)
    shown = pages(client, environment, limit=1000)
    doomed = {row["id"] for page in shown for row in page["deleted"]}
    assert len(shown) == 3 and len(doomed) == shown[0]["deletedCount"] > 2000
    assert str(restored.pk) not in doomed
    chunk = enforcement._CHUNK

    with django_capture_on_commit_callbacks(execute=True):
        removed = retention_enforce(environment=environment)

    assert {str(backup.pk) for backup in removed} == doomed
    marked = Backup.objects.filter(environment=environment, status=BackupStatus.DELETING)
    assert {str(pk) for pk in marked.values_list("id", flat=True)} == doomed
    cleanups = [t for t in queued_tasks() if t["func"] == "backups.tasks.delete_backups"]
    assert len(cleanups) == math.ceil(len(doomed) / chunk)
    assert max(len(task["args"][0]) for task in cleanups) == chunk
    assert {id for task in cleanups for id in task["args"][0]} == doomed
    assert not Backup.objects.filter(environment=theirs).exclude(
        status__in=[BackupStatus.COMPLETED, BackupStatus.FAILED]
    )
    assert retention_plan_for(environment=environment).deleted_count == 0
    # A chunk's cleanup task finishes the deletion of every backup it names.
    first = cleanups[0]["args"][0]
    assert backup_tasks.delete_backups(first) == len(first)
    assert set(Backup.objects.filter(pk__in=first).values_list("status", flat=True)) == {
        BackupStatus.DELETED
    }


def test_a_batch_leaves_alone_what_changed_since_the_plan_or_is_being_restored(environment):
    kept, changed, restoring, running = (
        factories.BackupFactory(environment=environment, status=status)
        for status in ("completed", "completed", "completed", "in-progress")
    )
    Backup.objects.filter(pk=changed.pk).update(status=BackupStatus.DELETING)
    factories.RestoreFactory(backup=restoring, status="scheduled")
    marked = backups_delete_batch(
        backups={
            str(kept.pk): "completed",
            str(changed.pk): "completed",
            restoring.pk: "completed",
            running.pk: "in-progress",
        }
    )

    assert [backup.pk for backup in marked] == [kept.pk]
    assert Backup.objects.get(pk=kept.pk).status == BackupStatus.DELETING
    assert Backup.objects.get(pk=restoring.pk).status == BackupStatus.COMPLETED
    assert Backup.objects.get(pk=running.pk).status == BackupStatus.IN_PROGRESS
