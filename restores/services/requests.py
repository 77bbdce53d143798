"""Requesting a restore: validating the target and the point in time, creating the log row,
enqueueing it, undoing a restore and claiming one to run."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.services import audit_record
from backups.models import Backup, BackupStatus
from config.errors import Conflict, Unprocessable
from organizations.models import Database, Environment
from restores.models import Restore, RestoreStatus
from restores.selectors import restore_plan, restore_running_into


def restore_request(
    *,
    backup: Backup,
    target_type: str,
    target_environment: Environment | str | None = None,
    target_database: Database | str | None = None,
    pitr_timestamp: datetime | None = None,
    user=None,
    take_safety_backup: bool = True,
    undoes: Restore | None = None,
    enqueue: bool = True,
) -> Restore:
    """Validate a restore and create its log row ``scheduled``; the work is enqueued on commit.

    ``target_environment`` is an Environment or its id (another organisation's is a 404);
    ``target_database`` (a one-database backup only) the database to replace, or its id.
    The plan (``restores.selectors.restore_plan``, the same the plan endpoint answers) is
    stored on the row, and the worker restores exactly that.
    ``enqueue=False`` leaves the row for the caller to claim and run in-process.
    """
    plan = restore_plan(
        backup=backup,
        target_type=target_type,
        target_environment=target_environment,
        target_database=target_database,
        pitr_timestamp=pitr_timestamp,
    )
    environment, members = plan.environment, plan.members
    running = restore_running_into(environment)
    if running is not None:
        raise Conflict(_busy_message(environment, running))
    try:
        with transaction.atomic():
            restore = Restore.objects.create(
                organisation=backup.organisation,
                backup=backup,
                source_environment=backup.environment,
                target_environment=environment,
                # The one database a one-database restore replaces.
                target_database=members[0].database if members[0].slot == "" else None,
                members=plan.records(),
                plan_warnings=plan.warnings,
                target_type=(
                    Restore.TargetType.SAME
                    if environment.pk == backup.environment_id
                    else Restore.TargetType.OTHER
                ),
                pitr_target=pitr_timestamp,
                requested_by=user if getattr(user, "pk", None) else None,
                take_safety_backup=take_safety_backup,
                undoes=undoes,
                # A point in time has no artifact of known size; estimated once recovered.
                bytes_total=backup.size if pitr_timestamp is None else None,
            )
            audit_record(
                organisation=backup.organisation_id,
                action="restore.undo" if undoes is not None else "restore.request",
                obj=restore,
                details={
                    "backup_id": str(backup.pk),
                    "backup_name": backup.name,
                    "target_type": restore.target_type,
                    "target_environment_id": str(environment.pk),
                    "target_database_id": (
                        str(restore.target_database_id) if restore.target_database_id else None
                    ),
                    "pitr_timestamp": pitr_timestamp,
                    "undoes": str(undoes.pk) if undoes is not None else None,
                    "safety_backup": take_safety_backup,
                },
            )
    except IntegrityError as exc:
        # The partial unique constraint: someone else started one meanwhile.
        running = restore_running_into(environment)
        raise Conflict(_busy_message(environment, running)) from exc
    if enqueue:
        transaction.on_commit(lambda: enqueue_restore(restore))
    return restore


def _busy_message(environment: Environment, running: Restore | None) -> str:
    since = f" (requested {running.created_at:%Y-%m-%d %H:%M:%S} UTC)" if running else ""
    return f"A restore into {environment} is already running{since}; wait for it to finish."


def enqueue_restore(restore: Restore) -> None:
    task_id = async_task(
        "restores.tasks.run_restore",
        str(restore.id),
        task_name=f"restore {restore.id}",
        group="restores",
    )
    Restore.objects.filter(pk=restore.pk).update(task_id=task_id or "")


def restore_undo(*, restore: Restore, user=None) -> Restore:
    """Restore the safety backup a restore took, into the same target ("undo this restore")."""
    if restore.status != RestoreStatus.COMPLETED:
        raise Unprocessable(
            f"Only a completed restore can be undone; this one is {restore.status}."
        )
    safety = restore.safety_backup
    if safety is None or safety.status != BackupStatus.COMPLETED:
        raise Unprocessable(
            "This restore took no safety backup (or it is gone), so it cannot be undone."
        )
    return restore_request(
        backup=safety, target_type=Restore.TargetType.SAME, user=user, undoes=restore
    )


def restore_claim(*, restore_id) -> Restore | None:
    """Atomically move a restore from scheduled to in-progress; None if someone else did."""
    now = timezone.now()
    claimed = Restore.objects.filter(pk=restore_id, status=RestoreStatus.SCHEDULED).update(
        status=RestoreStatus.IN_PROGRESS, started_at=now, heartbeat_at=now
    )
    if claimed != 1:
        return None
    return Restore.objects.select_related(
        "backup__environment__project__organisation",
        "target_environment__project__organisation",
        "organisation",
    ).get(pk=restore_id)
