"""Reads of drills: a database's drills, its policy, and what the pages show."""

from __future__ import annotations

from django.db.models import QuerySet

from drills.models import Drill, DrillPolicy, DrillStatus
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
    """What ``templates/drills/_drill_list.html`` shows for one database (its page):
    ``{% include "drills/_drill_list.html" %}`` with this context merged in."""
    drills = list(drills_for_database(organisation=organisation, database=database)[:limit])
    return {
        "drills": drills,
        "drill_policy": drill_policy_of(database=database),
        "drill_trend": rto_trend(drills),
        "drill_show_database": False,
    }


def drills_environment_context(*, organisation: Organisation, environment, limit: int = 10):
    """The same include on the environment page: the latest drills of all its databases."""
    drills = recent_drills_for_environment(
        organisation=organisation, environment=environment, limit=limit
    )
    return {"drills": drills, "drill_trend": None, "drill_show_database": True}


TREND_WIDTH, TREND_HEIGHT = 160, 32


def rto_trend(drills: list[Drill]) -> dict | None:
    """A sparkline of the passed drills' recovery times, oldest first (None under two)."""
    times = [
        d.rto_seconds
        for d in reversed(drills)
        if d.rto_seconds is not None and d.status == DrillStatus.PASSED
    ]
    if len(times) < 2:
        return None
    top = max(times) or 1.0
    step = TREND_WIDTH / (len(times) - 1)
    points = " ".join(
        f"{i * step:.1f},{TREND_HEIGHT - 2 - (t / top) * (TREND_HEIGHT - 4):.1f}"
        for i, t in enumerate(times)
    )
    return {
        "points": points,
        "width": TREND_WIDTH,
        "height": TREND_HEIGHT,
        "summary": f"Recovery time of the last {len(times)} passed drills: "
        + ", ".join(f"{t:.1f} s" for t in times),
    }
