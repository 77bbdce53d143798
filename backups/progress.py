"""The progress event every stream and page shows for a backup."""

from __future__ import annotations

from django.utils import timezone

from backups.models import Backup, BackupStatus

FAILED_STATUSES = {BackupStatus.FAILED, BackupStatus.ABORTED, BackupStatus.NOT_SUPPORTED}


def eta_seconds(*, started_at, bytes_done: int, bytes_total: int | None) -> float | None:
    if not started_at or not bytes_total or bytes_done <= 0 or bytes_done >= bytes_total:
        return None
    elapsed = (timezone.now() - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = bytes_done / elapsed
    return round((bytes_total - bytes_done) / rate, 1)


def progress_event(work, *, running: bool) -> dict:
    """``{status, phase, bytesDone, bytesTotal, percent, message, etaSeconds}`` of a backup
    or a restore (both keep the same progress fields)."""
    return {
        "status": work.status,
        "phase": work.phase or None,
        "bytesDone": work.bytes_done,
        "bytesTotal": work.bytes_total,
        "percent": work.percent,
        "message": work.message,
        "etaSeconds": eta_seconds(
            started_at=work.started_at, bytes_done=work.bytes_done, bytes_total=work.bytes_total
        )
        if running
        else None,
    }


def backup_progress_event(backup: Backup) -> dict:
    return progress_event(backup, running=backup.status == BackupStatus.IN_PROGRESS)


def backup_final_event_name(backup: Backup) -> str | None:
    """``done`` or ``failed`` once the backup has reached an end state, else None."""
    if backup.status in FAILED_STATUSES:
        return "failed"
    if backup.status in (BackupStatus.COMPLETED, BackupStatus.DELETED, BackupStatus.DELETING):
        return "done"
    return None
