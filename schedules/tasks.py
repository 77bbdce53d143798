"""django-q2 entry points for schedules: thin, each calls one service.

Registered as periodic tasks by ``schedules/migrations/0002_periodic_tasks.py``.
"""

import logging

from organizations.models import Environment
from schedules.enforcement import (
    environments_with_schedule,
    retention_enforce,
    retention_extend_locks,
)
from schedules.runs import detect_missed_runs, schedules_run_due

logger = logging.getLogger(__name__)


def run_due_schedules() -> str:
    """Every minute: start the backups whose slot came due."""
    result = schedules_run_due()
    return (
        f"{len(result.started)} started, {len(result.refused)} refused, "
        f"{result.skipped} skipped (paused or disabled)"
    )


def check_missed_runs() -> int:
    """Every few minutes: raise or resolve schedule_missed alerts."""
    return len(detect_missed_runs())


def enforce_retention() -> int:
    """Hourly: apply each scheduled environment's retention policy; returns backups removed."""
    removed = 0
    for environment in environments_with_schedule():
        try:
            removed += len(retention_enforce(environment=environment))
        except Exception:
            # One environment's failure (a bad timezone row, a database hiccup) must not
            # stop retention for every other environment.
            logger.exception("retention of %s failed", environment)
    return removed


def extend_locks(environment_id: str) -> int:
    """After a policy change: extend the object locks the new plan outlasts."""
    return retention_extend_locks(environment=Environment.objects.get(pk=environment_id))
