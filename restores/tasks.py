"""django-q2 entry points: they take ids and call one service."""

import logging

from backups.models import Backup
from restores.services import (
    backup_test_restore,
    restore_claim,
    restore_execute,
    restores_reap_stale,
    restores_test_due,
)

logger = logging.getLogger(__name__)


def run_restore(restore_id: str) -> str:
    restore = restore_claim(restore_id=restore_id)
    if restore is None:
        # Duplicate delivery, or run by another worker or the command line: nothing to do.
        logger.info("restore %s was not claimable; skipping", restore_id)
        return "skipped"
    return restore_execute(restore=restore).status


def test_restore_backup(backup_id: str) -> bool:
    return backup_test_restore(backup=Backup.objects.get(pk=backup_id))


def test_restore_latest_backups() -> int:
    return len(restores_test_due())


def reap_stale_restores() -> int:
    return len(restores_reap_stale())
