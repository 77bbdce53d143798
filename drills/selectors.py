"""Reads of drills: a database's drills, its policy, and what the pages show."""

from __future__ import annotations

from django.db.models import QuerySet

from drills.models import Drill, DrillPolicy
from organizations.models import Database, Organisation
from organizations.tenancy import restrict


def drills_for_database(*, organisation: Organisation, database: Database) -> QuerySet[Drill]:
    """The database's drills, newest first."""
    return restrict(Drill.objects.filter(database=database), organisation).select_related("backup")


def drill_policy_of(*, database: Database) -> DrillPolicy | None:
    return DrillPolicy.objects.filter(database=database).first()


def recent_drills_for_environment(
    *, organisation: Organisation, environment, limit: int = 10
) -> list[Drill]:
    """The environment's latest drills (of every database and its files), newest first."""
    drills = restrict(Drill.objects.filter(environment=environment), organisation)
    return list(drills.select_related("database", "backup").order_by("-created_at")[:limit])


def drill_list_context(*, organisation: Organisation, database: Database, limit: int = 10) -> dict:
    """What ``templates/drills/_drill_list.html`` shows for one database (its page)."""
    drills = list(drills_for_database(organisation=organisation, database=database)[:limit])
    return {
        "drills": drills,
        "drill_policy": drill_policy_of(database=database),
        # Oldest first, for the recovery-time trend.
        "drill_rto_trend": [d.rto_seconds for d in reversed(drills) if d.rto_seconds is not None],
    }
