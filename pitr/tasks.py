"""django-q2 entry points of point-in-time recovery.

``run_pitr_housekeeping`` is stored by name in django-q2's Schedule table (registered by
``backups/migrations/0003_pitr.py`` as ``backups.pitr.run_pitr_housekeeping``, renamed by
``pitr/migrations/0001_housekeeping_task_path.py``): renaming or moving it needs a data
migration like that one.
"""

import logging

from organizations.models import Environment
from pitr.coverage import pitr_databases
from pitr.retention import pitr_monitor, wal_purge_orphans, wal_retention_apply
from pitr.verify import wal_verify_all

logger = logging.getLogger(__name__)


def run_pitr_housekeeping() -> int:
    """Periodic: the archive verification (``pitr.verify``: listing, and a re-read within
    ``STRONGBOX_WAL_VERIFY_BYTES_PER_RUN`` per database), then alerts and WAL retention for
    every environment with WAL archiving on, and the files of WAL left behind by deleted
    databases. Verification comes before the monitor, so a lost file is a gap (and its
    alert) within the same run."""
    try:
        wal_purge_orphans()
    except Exception:
        logger.exception("purging the WAL of deleted databases failed")
    count = 0
    for environment in Environment.objects.filter(schedule__wal_enabled=True).select_related(
        "schedule", "project__organisation"
    ):
        try:
            report = wal_verify_all(databases=pitr_databases(environment))
            for error in report.errors:
                logger.warning("WAL verification of %s: %s", environment.pk, error)
        except Exception:
            logger.exception("verifying the WAL archive of %s failed", environment.pk)
        try:
            pitr_monitor(environment=environment)
            wal_retention_apply(environment=environment)
        except Exception:
            logger.exception("PITR housekeeping of %s failed", environment.pk)
        count += 1
    return count
