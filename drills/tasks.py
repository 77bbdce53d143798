"""django-q2 entry points for drills: they take ids and call one service.

``run_due_drills`` is registered as a periodic task (every minute) by
``drills/migrations/0001_initial.py``.
"""

import logging

from drills.services import drill_claim, drill_execute, drills_tick

logger = logging.getLogger(__name__)


def run_drill(drill_id: str) -> str:
    drill = drill_claim(drill_id=drill_id)
    if drill is None:
        # Duplicate delivery, or already run elsewhere: nothing to do.
        logger.info("drill %s was not claimable; skipping", drill_id)
        return "skipped"
    return drill_execute(drill=drill).status


def run_due_drills() -> str:
    """Every minute: reap drills whose worker died, enqueue again those whose task was
    lost, then start the drills that came due."""
    result = drills_tick()
    return (
        f"{len(result.started)} started, {len(result.refused)} refused, "
        f"{result.skipped} skipped, {len(result.reaped)} reaped, "
        f"{len(result.requeued)} enqueued again"
    )
