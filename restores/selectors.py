"""Reads of restore logs, always scoped to one organisation, and their progress event."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from backups.progress import progress_event
from backups.selectors import parse_uuid
from config.errors import NotFound
from organizations.models import Environment, Organisation
from restores.models import Restore, RestoreStatus


def restores_for_organisation(*, organisation: Organisation) -> QuerySet[Restore]:
    """Every restore log of the organisation, newest first, with what a list renders."""
    return (
        Restore.objects.filter(organisation=organisation)
        .select_related(
            "backup",
            "source_environment__project",
            "target_environment__project",
            "target_database",
            "requested_by",
            "safety_backup",
        )
        .order_by("-created_at", "-id")
    )


def restores_for_environment(
    *, organisation: Organisation, environment: Environment
) -> QuerySet[Restore]:
    """Restore logs where the environment is the source or the target (seed 003)."""
    return restores_for_organisation(organisation=organisation).filter(
        Q(source_environment=environment) | Q(target_environment=environment)
    )


def restore_get(*, organisation: Organisation, restore_id) -> Restore:
    pk = parse_uuid(restore_id)
    restore = (
        restores_for_organisation(organisation=organisation).filter(pk=pk).first()
        if pk is not None
        else None
    )
    if restore is None:
        raise NotFound(f"Restore {restore_id} not found.")
    return restore


def restore_latest_for_backup(*, organisation: Organisation, backup) -> Restore | None:
    return restores_for_organisation(organisation=organisation).filter(backup=backup).first()


def restore_progress_event(restore: Restore) -> dict:
    """The same event shape as a backup's."""
    return progress_event(restore, running=restore.status == RestoreStatus.IN_PROGRESS)


def restore_final_event_name(restore: Restore) -> str | None:
    """``done`` or ``failed`` once the restore has ended, else None."""
    return {RestoreStatus.COMPLETED: "done", RestoreStatus.FAILED: "failed"}.get(restore.status)
