"""Running a claimed restore: ``restore_execute`` and the ordinary restore of an artifact
(VERIFY, SAFETY_BACKUP, RESTORE, CHECK, SWAP); a point in time goes to ``point_in_time``."""

from __future__ import annotations

import logging

from alerts.models import AlertKind
from alerts.services import alert_raise
from backups import workdirs
from config.errors import ApplicationError
from restores.artifacts import Progress, fetch_verified, restore_job, tmp_dir
from restores.models import Restore, RestorePhase
from restores.plan import check_version, planned_members, replaced_text, source_version
from restores.services.point_in_time import execute_pitr
from restores.services.steps import (
    Phases,
    check_swap_complete,
    fail,
    load_all,
    load_phase,
    safety_phase,
    start,
)

logger = logging.getLogger(__name__)


def restore_execute(*, restore: Restore) -> Restore:
    """Run a claimed restore to its end state. Never leaves it in-progress."""
    phases = Phases()
    try:
        # Its loaders and files live in a private directory, removed (loaders killed) after.
        with workdirs.active(tmp_dir(), restore_job(restore.id)):
            _execute(restore, phases)
    except Exception as exc:
        logger.exception("restore %s failed unexpectedly", restore.id)
        phases.fail_running()
        fail(restore, f"Unexpected error: {exc}", phases)
    restore.refresh_from_db()
    return restore


def _execute(restore: Restore, phases: Phases) -> None:
    if restore.pitr_target is not None:
        execute_pitr(restore, phases)
        return
    backup = restore.backup
    progress = Progress(restore)
    tag = restore.id.hex[:8]

    verify = start(restore, phases, RestorePhase.VERIFY)
    try:
        members = planned_members(restore)
        for member in members:
            if member.database is not None:
                check_version(
                    member.source_engine,
                    source_version(backup, member),
                    member.database,
                    live=True,
                )
    except ApplicationError as exc:
        phases.finish(verify, "ERROR")
        fail(restore, f"The target cannot take this backup: {exc.message}", phases)
        return
    fetched, problems = fetch_verified(backup, progress)
    if fetched is None:
        phases.finish(verify, "ERROR")
        message = (
            "The backup's artifact failed verification, so nothing was restored and the "
            "target was not touched: " + "; ".join(problems)
        )
        fail(restore, message, phases)
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.VERIFICATION_FAILED,
            title=f"Backup {backup.name} failed verification before a restore",
            message=message[-2000:],
            backup=backup,
            severity="critical",
        )
        return
    phases.finish(verify, bytes=progress.bytes_done, copy=fetched.copy.destination.name)
    try:
        _restore_from(restore, backup, fetched, members, phases, progress, tag, problems)
    finally:
        fetched.cleanup()


def _restore_from(restore, backup, fetched, members, phases, progress, tag, problems) -> None:
    if not safety_phase(restore, members, phases, progress):
        return

    def load_artifact() -> None:
        load_all(backup, fetched, members, tag=tag, purpose="restore", progress=progress)

    if not load_phase(restore, members, phases, progress, load_artifact):
        return
    summary = (
        f"Restored {backup.name} into {restore.target_environment}, replacing "
        f"{replaced_text(restore.members) or ', '.join(m.label for m in members)}."
    )
    check_swap_complete(restore, members, phases, progress, tag, summary, problems)
