"""django-q2 entry points: they take ids and call one service."""

import logging

from backups.models import Backup
from restores.services import (
    backup_test_restore,
    restore_claim,
    restore_execute,
    restores_reap_stale,
    restores_sweep_leftovers,
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


def clean_up_at_worker_start(sender, proc_name: str = "", **kwargs) -> None:
    """django-q2's ``post_spawn``: a new worker process removes what killed ones left."""
    try:
        removed = restores_sweep_leftovers()
    except Exception:  # a failed clean-up must not stop the worker from working
        logger.exception("could not remove the leftovers of earlier workers")
        return
    if removed:
        logger.warning("worker %s removed leftovers of earlier workers: %s", proc_name, removed)
