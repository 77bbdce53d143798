"""django-q2 entry points of point-in-time recovery.

``run_pitr_housekeeping`` is stored by name in django-q2's Schedule table (registered by
``backups/migrations/0003_pitr.py`` as ``backups.pitr.run_pitr_housekeeping``, renamed by
``pitr/migrations/0001_housekeeping_task_path.py``): renaming or moving it needs a data
migration like that one.
"""

import logging

from organizations.models import Environment
from pitr.retention import pitr_monitor, wal_purge_orphans, wal_retention_apply

logger = logging.getLogger(__name__)


def run_pitr_housekeeping() -> int:
    """Periodic: alerts and WAL retention for every environment with WAL archiving on, and
    the files of WAL left behind by deleted databases."""
    try:
        wal_purge_orphans()
    except Exception:
        logger.exception("purging the WAL of deleted databases failed")
    count = 0
    for environment in Environment.objects.filter(schedule__wal_enabled=True).select_related(
        "schedule", "project__organisation"
    ):
        try:
            pitr_monitor(environment=environment)
            wal_retention_apply(environment=environment)
        except Exception:
            logger.exception("PITR housekeeping of %s failed", environment.pk)
        count += 1
    return count
