"""Requesting a restore: validating the target and the point in time, creating the log row,
enqueueing it, undoing a restore and claiming one to run."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from backups.models import Backup, BackupKind, BackupStatus
from backups.pitr import pitr_validate_timestamp
from config.errors import Conflict, InvalidInput, NotFound, Unprocessable
from organizations.models import Environment
from restores.models import ACTIVE_RESTORE_STATUSES, Restore, RestoreStatus
from restores.plan import PITR_KINDS, family, plan_pitr_restore, plan_restore

NEW_TARGET_DISABLED = "targetType 'new' is disabled until orchestration exists"


def _target_environment(backup: Backup, target_type: str, target_environment) -> Environment:
    if target_type == Restore.TargetType.SAME:
        if target_environment is not None and str(
            getattr(target_environment, "pk", target_environment)
        ) != str(backup.environment_id):
            raise InvalidInput(
                "targetEnvironmentId is only for targetType 'other'.",
                fields={"targetEnvironmentId": ["Leave it out, or use targetType 'other'."]},
            )
        return backup.environment
    if target_environment in (None, ""):
        raise InvalidInput(
            "targetEnvironmentId is required when targetType is 'other'.",
            fields={"targetEnvironmentId": ["This field is required when targetType is 'other'."]},
        )
    reference = getattr(target_environment, "pk", target_environment)
    try:
        pk = uuid.UUID(str(reference))
    except ValueError:
        pk = None
    found = (
        Environment.objects.select_related("project__organisation")
        .filter(pk=pk, project__organisation_id=backup.organisation_id)
        .first()
        if pk
        else None
    )
    if found is None:
        # Another organisation's environment is reported exactly like a missing one.
        raise NotFound(f"Environment {reference} not found.")
    return found


def _check_pitr(*, backup: Backup, pitr_timestamp: datetime) -> None:
    """A point in time must lie inside the WAL coverage of the backup's database (or, for
    other kinds, of its environment): a 422 that states the window otherwise."""
    database = backup.database if backup.kind in PITR_KINDS else None
    if database is not None and family(database.engine) != "postgresql":
        message = (
            "Point-in-time recovery needs a PostgreSQL database whose WAL Strongbox archives; "
            f"{database.name} is a {database.get_engine_display()} database."
        )
        raise Unprocessable(message, fields={"pitrTimestamp": [message]})
    pitr_validate_timestamp(
        environment=backup.environment, timestamp=pitr_timestamp, database=database
    )


def restore_request(
    *,
    backup: Backup,
    target_type: str,
    target_environment: Environment | str | None = None,
    pitr_timestamp: datetime | None = None,
    user=None,
    take_safety_backup: bool = True,
    undoes: Restore | None = None,
    enqueue: bool = True,
) -> Restore:
    """Validate a restore and create its log row ``scheduled``; the work is enqueued on commit.

    ``target_environment`` is an Environment or its id (another organisation's is a 404).
    ``enqueue=False`` leaves the row for the caller to claim and run in-process.
    """
    target_type = (target_type or "").strip().lower()
    if target_type == "new":
        raise Unprocessable(NEW_TARGET_DISABLED, fields={"targetType": [NEW_TARGET_DISABLED]})
    if target_type not in Restore.TargetType.values:
        raise InvalidInput(
            f"Unknown targetType {target_type!r}: use 'same' or 'other'.",
            fields={"targetType": ["Must be 'same' or 'other'."]},
        )
    if backup.status != BackupStatus.COMPLETED:
        raise Unprocessable(
            f"Only a completed backup can be restored; {backup.name} is {backup.status}."
        )
    environment = _target_environment(backup, target_type, target_environment)
    if pitr_timestamp is None:
        members = plan_restore(backup, environment)
    else:
        _check_pitr(backup=backup, pitr_timestamp=pitr_timestamp)
        members = plan_pitr_restore(backup, environment)
    running = Restore.objects.filter(
        target_environment=environment, status__in=ACTIVE_RESTORE_STATUSES
    ).first()
    if running is not None:
        raise Conflict(_busy_message(environment, running))
    try:
        with transaction.atomic():
            restore = Restore.objects.create(
                organisation=backup.organisation,
                backup=backup,
                source_environment=backup.environment,
                target_environment=environment,
                target_database=members[0].database if backup.kind == BackupKind.DATABASE else None,
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
    except IntegrityError as exc:
        # The partial unique constraint: someone else started one meanwhile.
        running = Restore.objects.filter(
            target_environment=environment, status__in=ACTIVE_RESTORE_STATUSES
        ).first()
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
