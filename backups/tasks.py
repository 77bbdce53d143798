"""django-q2 entry points: they take ids and call one service."""

import logging

from backups.models import Backup, BackupStatus
from backups.services import (
    backup_claim,
    backup_delete_artifacts,
    backup_execute,
    backup_verify,
    backups_discard_failed_uploads,
    backups_reap_stale,
    backups_requeue_lost,
)
from config.logging import log_context

logger = logging.getLogger(__name__)


def run_backup(backup_id: str) -> str:
    with log_context(backup_id=backup_id):
        backup = backup_claim(backup_id=backup_id)
        if backup is None:
            # Duplicate delivery, or aborted/handled by another worker: nothing to do.
            logger.info("backup was not claimable; skipping")
            return "skipped"
        logger.info("backup started")
        # Every kind, physical base backups included, runs through the one execution core.
        status = backup_execute(backup=backup).status
        logger.info("backup ended %s", status)
        return status


def delete_backup(backup_id: str) -> str:
    with log_context(backup_id=backup_id):
        backup = Backup.objects.filter(pk=backup_id, status=BackupStatus.DELETING).first()
        if backup is None:
            return "skipped"
        return backup_delete_artifacts(backup=backup).status


def verify_backup(backup_id: str) -> bool:
    with log_context(backup_id=backup_id):
        return backup_verify(backup=Backup.objects.get(pk=backup_id))


def reap_stale_backups() -> int:
    backups_requeue_lost()
    return len(backups_reap_stale())


def retry_pending_deletions() -> int:
    """Deletions that failed on a destination are retried until they succeed, and what
    failed uploads left behind (the store was down) is removed once the store is back."""
    pending = Backup.objects.filter(status=BackupStatus.DELETING)
    for backup in pending:
        backup_delete_artifacts(backup=backup)
    backups_discard_failed_uploads()
    return pending.count()


def delete_backups(backup_ids: list[str]) -> int:
    """The cleanup of a batch ``backups_delete_batch`` marked; returns how many it ran."""
    done = 0
    for backup in Backup.objects.filter(pk__in=backup_ids, status=BackupStatus.DELETING):
        with log_context(backup_id=str(backup.pk)):
            backup_delete_artifacts(backup=backup)
        done += 1
    return done
