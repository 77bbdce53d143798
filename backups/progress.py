"""The progress event every stream and page shows for a backup (and, through
``progress_event`` and ``phase_states``, for a restore)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.utils import timezone

from backups.models import Backup, BackupCopy, BackupStatus, Phase

FAILED_STATUSES = {BackupStatus.FAILED, BackupStatus.ABORTED, BackupStatus.NOT_SUPPORTED}

# Every backup kind runs these, in this order (COMPRESS and UPLOAD start with the DUMP).
BACKUP_PHASES = (Phase.DUMP, Phase.COMPRESS, Phase.UPLOAD, Phase.VERIFY)

# A recorded phase's status (seed 004's ``steps.details`` spelling) -> what a page says.
PHASE_STATES = {"RUNNING": "running", "SUCCESS": "done", "ERROR": "failed", "SKIPPED": "skipped"}


def eta_seconds(*, started_at, bytes_done: int, bytes_total: int | None) -> float | None:
    if not started_at or not bytes_total or bytes_done <= 0 or bytes_done >= bytes_total:
        return None
    elapsed = (timezone.now() - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = bytes_done / elapsed
    return round((bytes_total - bytes_done) / rate, 1)


def phase_states(work, *, planned: Sequence[str]) -> list[dict]:
    """``[{name, state, startedAt, finishedAt, durationSec}]`` of a backup or a restore:
    the phases it recorded, then, while it is still active, the planned ones it has not
    started (``pending``). A finished run lists only what it ran: a phase a failure cut
    short never ran, it is not pending."""
    recorded = [
        {
            "name": item.get("name", ""),
            "state": PHASE_STATES.get(item.get("status", ""), str(item.get("status", "")).lower()),
            "startedAt": item.get("started_at"),
            "finishedAt": item.get("finished_at"),
            "durationSec": item.get("duration_sec"),
        }
        for item in work.phases or []
    ]
    if work.is_active:
        seen = {item["name"] for item in recorded}
        recorded += [
            {
                "name": name,
                "state": "pending",
                "startedAt": None,
                "finishedAt": None,
                "durationSec": None,
            }
            for name in planned
            if name not in seen
        ]
    return recorded


def progress_event(work, *, running: bool, planned: Sequence[str] = ()) -> dict:
    """``{status, phase, phases, bytesDone, bytesTotal, percent, message, etaSeconds}`` of a
    backup or a restore (both keep the same progress fields)."""
    return {
        "status": work.status,
        "phase": work.phase or None,
        "phases": phase_states(work, planned=planned),
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


def iso(moment) -> str | None:
    """A timestamp as the events spell them (``Date.parse`` reads it in every browser)."""
    return moment.isoformat() if moment is not None else None


def run_duration(work) -> float | None:
    if work.started_at is None or work.completed_at is None:
        return None
    return round(max(0.0, (work.completed_at - work.started_at).total_seconds()), 3)


def backup_progress_event(backup: Backup) -> dict:
    return progress_event(
        backup, running=backup.status == BackupStatus.IN_PROGRESS, planned=BACKUP_PHASES
    )


def backup_result(backup: Backup, copies: Iterable[BackupCopy]) -> dict:
    """What a finished backup's final event adds: the facts the backup page shows only
    once it ended (sizes, checksum, duration, each destination's copy)."""
    return {
        "size": backup.size,
        "bytesRead": backup.bytes_done,
        "compression": backup.compression or None,
        "encryption": backup.encryption,
        "encryptionLabel": backup.get_encryption_display(),
        "keyId": backup.key_id or None,
        "checksumSha256": backup.checksum_sha256 or None,
        "engineVersion": backup.engine_version or None,
        "startedAt": iso(backup.started_at),
        "completedAt": iso(backup.completed_at),
        "durationSec": run_duration(backup),
        "tables": len(backup.row_counts or {}),
        "copies": [
            {
                "destination": copy.destination.name,
                "kind": copy.destination.get_kind_display(),
                "status": copy.status,
                "statusLabel": copy.get_status_display(),
                "size": copy.size,
                "key": copy.key,
                "error": copy.error or None,
                "lockedUntil": iso(copy.locked_until),
                "lastVerifiedAt": iso(copy.last_verified_at),
            }
            for copy in copies
        ],
    }


def backup_final_event_name(backup: Backup) -> str | None:
    """``done`` or ``failed`` once the backup has reached an end state, else None."""
    if backup.status in FAILED_STATUSES:
        return "failed"
    if backup.status in (BackupStatus.COMPLETED, BackupStatus.DELETED, BackupStatus.DELETING):
        return "done"
    return None


def backup_progress_results(pks: list) -> dict:
    """The progress event of each backup, and its final event's name once it ended; a
    final event carries the backup's ``result``. One query for the backups, and one for
    the copies of those that ended."""
    found = {backup.pk: backup for backup in Backup.objects.filter(pk__in=pks)}
    ended = [pk for pk, backup in found.items() if backup_final_event_name(backup)]
    copies: dict = {pk: [] for pk in ended}  # in the backup page's order (created_at)
    if ended:
        for copy in BackupCopy.objects.filter(backup_id__in=ended).select_related("destination"):
            copies[copy.backup_id].append(copy)
    gone = ({"status": "deleted", "message": "The backup no longer exists."}, "failed")
    results = {}
    for pk in pks:
        backup = found.get(pk)
        if backup is None:
            results[pk] = gone
            continue
        event, final = backup_progress_event(backup), backup_final_event_name(backup)
        if final:
            event["result"] = backup_result(backup, copies[pk])
        results[pk] = (event, final)
    return results
