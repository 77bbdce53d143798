"""Test restores: restore a backup into scratch copies, compare the row counts, drop them,
and record the result on the backup."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups import workdirs
from backups.engines import EngineError
from backups.keys import KeyUnavailable
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.pipeline import ArtifactCorrupt
from config.errors import ApplicationError
from restores.artifacts import Progress, fetch_verified, tmp_dir
from restores.plan import Member, plan_restore
from restores.services.steps import count_problems, discard_scratches, load_all, member_notes
from schedules.models import Schedule

TEST_RESTORE_FAILED = "Restore test failed"


def backup_test_restore(*, backup: Backup) -> bool:
    """Restore a backup into scratch copies, compare row counts, drop them; record the result.

    Sets ``verified_by_restore_at`` and ``verification_message`` on success; on a failure
    the message says why and a ``verification_failed`` alert is raised.
    """
    tag = uuid.uuid4().hex[:8]
    with workdirs.active(tmp_dir(), f"verify-{tag}") as work_dir:
        return _test_restore(backup, tag, str(work_dir))


def _test_restore(backup: Backup, tag: str, work_dir: str) -> bool:
    members: list[Member] = []
    fetched = None
    try:
        members = plan_restore(backup, backup.environment)
        fetched, problems = fetch_verified(backup, Progress(None))
        if fetched is None:
            return _record_test(backup, ok=False, detail="; ".join(problems))
        load_all(
            backup,
            fetched,
            members,
            tag=tag,
            purpose="verify",
            progress=Progress(None),
            # SQLite and files scratch copies hold the data by nature: in the private 0700
            # directory, which a later worker removes if this one is killed.
            scratch_dir=work_dir,
        )
        mismatches, notes = count_problems(members)
    except (ApplicationError, EngineError, ArtifactCorrupt, KeyUnavailable, OSError) as exc:
        return _record_test(backup, ok=False, detail=getattr(exc, "message", None) or str(exc))
    finally:
        discard_scratches(members)
        if fetched is not None:
            fetched.cleanup()
    if mismatches:
        return _record_test(backup, ok=False, detail="; ".join(mismatches))
    tables = sum(len(m.expected) for m in members if m.target.engine != "files")
    detail = f"{tables} table(s), every row count matches the backup's"
    # What the load left out (owners and GRANTs for roles this server lacks) is worth
    # knowing before the day the backup is needed.
    notes += member_notes(members)
    return _record_test(backup, ok=True, detail="; ".join([detail, *notes]))


def _record_test(backup: Backup, *, ok: bool, detail: str) -> bool:
    now = timezone.now()
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if ok:
        message = f"Verified by restore at {stamp}: {detail}."
        Backup.objects.filter(pk=backup.pk).update(
            verified_by_restore_at=now, verification_message=message
        )
        alert_resolve(
            organisation=backup.organisation, kind=AlertKind.VERIFICATION_FAILED, backup=backup
        )
    else:
        message = f"{TEST_RESTORE_FAILED} at {stamp}: {detail}"
        Backup.objects.filter(pk=backup.pk).update(verification_message=message[:8000])
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.VERIFICATION_FAILED,
            title=f"Backup {backup.name} failed its restore test",
            message=message[-2000:],
            backup=backup,
            severity="critical",
        )
    backup.refresh_from_db(fields=["verified_by_restore_at", "verification_message"])
    return ok


def backups_due_for_test_restore() -> Iterator[Backup]:
    """Per environment whose schedule asks for it: the latest completed backup of each
    database, and of the files/full kinds, not yet tested."""
    environments = Schedule.objects.filter(verify_by_restore=True).values_list(
        "environment_id", flat=True
    )
    candidates = (
        Backup.objects.filter(
            environment_id__in=list(environments),
            status=BackupStatus.COMPLETED,
            kind__in=[BackupKind.DATABASE, BackupKind.FILESYSTEM, BackupKind.FULL],
        )
        .exclude(trigger=BackupTrigger.SAFETY)
        .select_related("environment__project__organisation", "database")
        .order_by("environment_id", "-created_at")
    )
    seen = set()
    for backup in candidates:
        key = (backup.environment_id, backup.kind, backup.database_id)
        if key in seen:
            continue
        seen.add(key)
        tested = backup.verified_by_restore_at or backup.verification_message.startswith(
            TEST_RESTORE_FAILED
        )
        if not tested:
            yield backup


def restores_test_due() -> list[tuple[Backup, bool]]:
    return [
        (backup, backup_test_restore(backup=backup)) for backup in backups_due_for_test_restore()
    ]
