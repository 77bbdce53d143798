"""Reaping restores whose worker died: fail them, drop their scratch copies, put back the
members a dead SWAP phase had already swapped in, raise an alert."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise
from backups import workdirs
from backups.models import BackupStatus
from config.errors import ApplicationError
from pitr.restore import discard_recovered_copy, recovered_copy_dir
from restores import loading
from restores.artifacts import restore_job, tmp_dir
from restores.models import Restore, RestorePhase, RestoreStatus
from restores.plan import Member, planned_members, replaced_text, restore_target_text
from restores.services.steps import discard_scratches

logger = logging.getLogger(__name__)


def restores_reap_stale(*, now: datetime | None = None) -> list[Restore]:
    """Fail restores whose worker stopped sending heartbeats (it was killed or lost).

    A restore waiting for its safety backup counts as alive while that backup's own
    heartbeat is fresh. Scratch copies are dropped; the live target was never touched
    before the swap. A worker that died in the SWAP phase may have swapped some members in:
    their previous contents are kept under reserved names (``loading.kept_spec``), and are
    put back, so the environment is again as it was before the restore. Past the SWAP
    phase's commit point (every member in) the restore goes forward instead: it is
    completed and the kept copies are dropped.
    """
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
    stale = (
        Restore.objects.filter(status=RestoreStatus.IN_PROGRESS)
        .filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit))
        .exclude(
            safety_backup__status=BackupStatus.IN_PROGRESS, safety_backup__heartbeat_at__gte=limit
        )
        .select_related("backup", "target_environment__project__organisation", "organisation")
    )
    reaped = []
    for restore in stale:
        last = restore.heartbeat_at or restore.started_at
        died = (
            f"The worker running this restore stopped responding (last heartbeat "
            f"{last:%Y-%m-%d %H:%M:%S} UTC); it probably died."
        )
        if restore.members:
            died += f" It was to replace {replaced_text(restore.members)}."
        if restore.phase == RestorePhase.SWAP and _swapped_everything(restore):
            message = (
                f"{died} It had swapped every member in, so the restored data is in place; "
                "the previous copies kept during the swap were dropped."
            )
            if Restore.objects.filter(
                pk=restore.pk, status=RestoreStatus.IN_PROGRESS, heartbeat_at=restore.heartbeat_at
            ).update(status=RestoreStatus.COMPLETED, phase="", message=message, completed_at=now):
                _drop_kept_of(restore)
                reaped.append(restore)
            continue
        if restore.phase == RestorePhase.SWAP:
            message = f"{died} It was swapping the restored data in: putting the target back."
        else:
            message = f"{died} Scratch copies were removed; the target was not changed."
        # The status and its alert commit together: whoever sees "failed" sees why.
        with transaction.atomic():
            if not Restore.objects.filter(
                pk=restore.pk, status=RestoreStatus.IN_PROGRESS, heartbeat_at=restore.heartbeat_at
            ).update(status=RestoreStatus.FAILED, message=message, completed_at=now):
                continue
            restore.refresh_from_db()
            alert_raise(
                organisation=restore.organisation,
                kind=AlertKind.RESTORE_FAILED,
                title=f"Restore of {restore.backup.name} into {restore_target_text(restore)} "
                "failed: its worker died",
                message=message,
                restore=restore,
                environment=restore.target_environment,
                severity="critical",
            )
        _discard_job_of(restore)
        if restore.phase == RestorePhase.SWAP:
            _put_back_swapped(restore, died)
        else:
            _discard_scratches_of(restore)
        reaped.append(restore)
    return reaped


def _discard_job_of(restore: Restore) -> None:
    """Kill the dead restore's loaders (they may still write into its scratch copy) and remove
    its private files; only reachable when the reaper runs where the dead worker ran."""
    killed = workdirs.discard(workdirs.job_path(tmp_dir(), restore_job(restore.id)))
    if killed:
        logger.warning("killed the loaders %s of the dead restore %s", killed, restore.id)


def _swapped_everything(restore: Restore) -> bool:
    """Whether the SWAP phase passed its commit point (every member swapped in)."""
    return any(
        item.get("name") == RestorePhase.SWAP and item.get("status") == "SUCCESS"
        for item in restore.phases or []
    )


def _drop_kept_of(restore: Restore) -> None:
    tag = restore.id.hex[:8]
    for member in _members_of(restore) or []:
        try:
            loading.drop_kept(loading.kept_spec(member.target, tag))
        except Exception:  # noqa: BLE001 - a leftover only costs space
            logger.exception("could not drop the kept copy of %s", member.label)


def _members_of(restore: Restore) -> list[Member] | None:
    try:
        return planned_members(restore)
    except ApplicationError:
        return None


def _put_back_swapped(restore: Restore, died: str) -> None:
    """Put back every member whose kept previous copy exists, last first; drop the scratch
    copies that were never swapped; then say in the restore and its alert what happened."""
    tag = restore.id.hex[:8]
    members = _members_of(restore)
    if members is None:
        outcome = (
            "Its members could not be worked out again: look for previous copies kept under "
            f"names ending in _sbx_prev_{tag} or .sbx-prev-{tag} beside the targets."
        )
    else:
        outcome = _put_back_kept(members, tag)
    message = f"{died} It was swapping the restored data in. {outcome}"
    with transaction.atomic():
        Restore.objects.filter(pk=restore.pk).update(message=message[-8000:])
        restore.message = message
        alert_raise(
            organisation=restore.organisation,
            kind=AlertKind.RESTORE_FAILED,
            title=f"Restore of {restore.backup.name} failed: its worker died while swapping",
            message=message[-2000:],
            restore=restore,
            environment=restore.target_environment,
            severity="critical",
        )


def _put_back_kept(members: list[Member], tag: str) -> str:
    done, stuck = [], []
    for member in reversed(members):
        kept = loading.kept_spec(member.target, tag)
        scratch = loading.scratch_spec(member.target, tag, purpose="restore")
        try:
            if loading.put_back(member.target, kept, tag=tag):
                done.append(member.label)
                continue
        except Exception as exc:  # noqa: BLE001 - the others must still be put back
            logger.exception("could not put %s back", member.label)
            stuck.append(
                f"{member.label} could not be put back ({exc}); its previous contents stay "
                f"kept as {kept.name}"
            )
            continue
        member.scratch = scratch
        discard_scratches([member])
    parts = []
    if done:
        parts.append(f"Put back as they were: {', '.join(reversed(done))}.")
    parts += [f"{sentence}." for sentence in stuck]
    if not stuck:
        parts.append("The target is as it was before the restore.")
    return " ".join(parts)


def _discard_scratches_of(restore: Restore) -> None:
    tag = restore.id.hex[:8]
    if restore.pitr_target is not None:
        # Only reachable when the reaper runs where the dead worker ran; else it stays.
        discard_recovered_copy(recovered_copy_dir(tmp_dir(), tag))
    members = _members_of(restore)
    if members is None:
        return
    for member in members:
        member.scratch = loading.scratch_spec(member.target, tag, purpose="restore")
    discard_scratches(members)


def restores_sweep_leftovers(*, started_at: float | None = None) -> list[str]:
    """Remove what killed workers left in the temporary directory; returns what went.

    Run when a worker process starts. The private directories of restores and test restores
    whose worker process is gone (their recorded loaders are killed first), loose
    ``strongbox-*`` files older than ``started_at`` that no process holds open, and the
    recovered copies (``pitr-<tag>``) of restores no longer running.
    """
    started_at = time.time() if started_at is None else started_at
    parent = tmp_dir()
    removed = workdirs.sweep(parent, started_before=started_at)
    running = {
        pk.hex[:8]
        for pk in Restore.objects.filter(status=RestoreStatus.IN_PROGRESS).values_list(
            "id", flat=True
        )
    }
    for path in Path(parent).glob("pitr-*"):
        if path.name.removeprefix("pitr-") not in running and path.stat().st_mtime < started_at:
            discard_recovered_copy(path)
            removed.append(path.name)
    return removed
