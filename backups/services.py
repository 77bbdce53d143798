"""The backup lifecycle: request, abort, delete, verify, reap (running one: ``execution``).

A backup is ``completed`` only when every selected destination holds the whole artifact
with the recorded size; anything else ends ``failed`` with a message naming what went
wrong, and no partial artifact is left under a final key.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from audit.context import system_actor
from audit.services import AuditObject, audit_record, changes
from backups.age_format import AgeKeyError, identity_text, parse_identities, parse_recipient
from backups.downloads import Download, backup_download_open
from backups.engines import EngineError, get_engine
from backups.execution import (  # noqa: F401 - the public lifecycle API lives here too
    artifact_key,
    backup_claim,
    backup_execute,
    connection_spec_for,
    files_spec_for,
    mark_copy,
    pipeline_options_for,
    update_backup,
)
from backups.keys import MAX_AGE_RECIPIENTS, configured_age_recipients
from backups.models import (
    ACTIVE_STATUSES,
    AgeKeys,
    Backup,
    BackupCopy,
    BackupKind,
    BackupMethod,
    BackupStatus,
    BackupTrigger,
    CopyStatus,
)
from backups.pipeline import sha256_of
from config.errors import ApplicationError, Conflict, InvalidInput
from destinations.backends import BACKENDS, DestinationBackends
from destinations.models import Destination
from destinations.storage import (
    ArtifactMissing,
    delete_artifact,
    discard_partial_artifacts,
    open_artifact_stream,
)
from organizations.models import Database, Environment, Organisation
from organizations.services import environment_lock
from organizations.validators import require_backup_paths

logger = logging.getLogger(__name__)

KIND_SYNONYMS = {"db": BackupKind.DATABASE, "database": BackupKind.DATABASE}


# --- requesting ----------------------------------------------------------------------------


# Kinds another app requests itself (``pitr`` registers ``base`` in its AppConfig.ready):
# the manual trigger, the command line and the UI reach them through ``backup_request``
# without this app importing the one above it.
_REQUESTS_FROM_APPS: dict[str, Callable[..., list[Backup]]] = {}


def register_backup_request(kind: str, request: Callable[..., list[Backup]]) -> None:
    """``request(environment=, database=, destination_ids=, description=, trigger=, user=)``
    makes the backups of ``kind`` and enqueues them, as ``backup_request`` does."""
    _REQUESTS_FROM_APPS[kind] = request


def normalise_kind(kind: str) -> str:
    kind = KIND_SYNONYMS.get(kind, kind)
    if kind in _REQUESTS_FROM_APPS:
        return kind
    if kind not in (BackupKind.DATABASE, BackupKind.FILESYSTEM, BackupKind.FULL):
        raise InvalidInput(
            f"Unknown backup type {kind!r}: use db, full or filesystem.",
            fields={"type": ["Must be one of db, full, filesystem."]},
        )
    return kind


def backup_request(
    *,
    environment: Environment,
    kind: str,
    database: Database | None = None,
    destination_ids: list | None = None,
    description: str = "",
    trigger: str = BackupTrigger.MANUAL,
    user=None,
    schedule=None,
    schedule_rules: list | None = None,
) -> list[Backup]:
    """Create ``scheduled`` backups and enqueue their work once the transaction commits.

    ``database`` kind makes one backup per database of the environment (or just the one
    given); ``filesystem`` and ``full`` make one for the environment.
    """
    kind = normalise_kind(kind)
    if request := _REQUESTS_FROM_APPS.get(kind):
        return request(
            environment=environment,
            database=database,
            destination_ids=destination_ids,
            description=description,
            trigger=trigger,
            user=user,
        )
    destinations = _destinations_for(environment, destination_ids, schedule)
    targets = _targets_for(environment, kind, database)
    created: list[Backup] = []
    busy: list[Conflict] = []
    with transaction.atomic():
        environment_lock(environment=environment)  # against a concurrent delete of it
        for target_db in targets:
            try:
                created.append(
                    _create_backup(
                        environment=environment,
                        kind=kind,
                        database=target_db,
                        destinations=destinations,
                        description=description or _default_description(trigger),
                        trigger=trigger,
                        user=user,
                        schedule=schedule,
                        schedule_rules=schedule_rules or [],
                        several=len(targets) > 1,
                    )
                )
            except Conflict as conflict:
                # A person asked for all of them: say no. A schedule backs up the databases
                # that are free rather than none because one is still busy.
                if trigger != BackupTrigger.SCHEDULED:
                    raise
                logger.warning("scheduled backup skipped: %s", conflict.message)
                busy.append(conflict)
        if busy and not created:
            raise busy[0]
        for backup in created:
            audit_backup_trigger(backup=backup, trigger=trigger, destinations=destinations)
        # robust: the rows are committed; a broker that is down must not turn the request
        # into an error (backups_requeue_lost enqueues them again later).
        transaction.on_commit(lambda: [enqueue_backup(backup) for backup in created], robust=True)
    return created


def backup_retry(*, backup: Backup, user=None) -> list[Backup]:
    """Back up again what a failed (or aborted) backup was for: the same kind, the same
    database, the same destinations (those still in the organisation). A new backup: the
    failed one stays as it was, for its message."""
    if backup.status not in (BackupStatus.FAILED, BackupStatus.ABORTED):
        raise Conflict(f"Only a failed or aborted backup is retried; this one is {backup.status}.")
    if backup.kind == BackupKind.DATABASE and backup.database_id is None:
        raise Conflict("The database of this backup was removed; there is nothing to retry.")
    if backup.kind not in (BackupKind.DATABASE, BackupKind.FILESYSTEM, BackupKind.FULL):
        raise Conflict(f"A {backup.get_kind_display()} is retried by its own schedule.")
    destination_ids = [
        str(pk)
        for pk in backup.destinations.filter(organisation_id=backup.organisation_id).values_list(
            "pk", flat=True
        )
    ]
    return backup_request(
        environment=backup.environment,
        kind=backup.kind,
        database=backup.database if backup.kind == BackupKind.DATABASE else None,
        destination_ids=destination_ids or None,
        description=f"Retry of {backup.name}",
        user=user,
    )


class ConnectionTest(NamedTuple):
    """What "Test connection" found: the server's version, or the exact error."""

    ok: bool
    version: str = ""
    error: str = ""


def database_connection_test(*, database: Database) -> ConnectionTest:
    """Connect to ``database`` (saved or not) exactly as a backup does: its server paths
    checked again, its host checked against the organisation's host policy and connected to
    at the checked address (``connection_spec_for``), through the engine's own driver; and
    ask the server's version. Nothing is written, not even the version."""
    try:
        require_backup_paths(database)
        engine = get_engine(database.engine)
        spec = connection_spec_for(database)
        engine.check_connection(spec)
        version = engine.server_version(spec)
    except (EngineError, ApplicationError, OSError) as exc:
        return ConnectionTest(ok=False, error=getattr(exc, "message", None) or str(exc))
    return ConnectionTest(ok=True, version=version)


_SYSTEM_TRIGGERS = {
    BackupTrigger.SCHEDULED: system_actor("scheduler"),
    BackupTrigger.SAFETY: system_actor("restore"),
}


def audit_backup_trigger(*, backup: Backup, trigger: str, destinations: list[Destination]) -> None:
    """``backup.trigger`` in the audit log (pitr's base backups record theirs with it)."""
    audit_record(
        organisation=backup.organisation_id,
        action="backup.trigger",
        obj=backup,
        # A schedule's backups are the scheduler's (whoever saved the schedule), a
        # restore's safety backups the restore's (whoever asked for the restore).
        actor=_SYSTEM_TRIGGERS.get(trigger),
        details={
            "kind": backup.kind,
            "trigger": trigger,
            "environment_id": str(backup.environment_id),
            "database_id": str(backup.database_id) if backup.database_id else None,
            "destination_ids": [str(d.pk) for d in destinations],
        },
    )


def _default_description(trigger: str) -> str:
    return {
        BackupTrigger.MANUAL: "Manual backup",
        BackupTrigger.SCHEDULED: "Scheduled backup",
        BackupTrigger.SAFETY: "Safety backup before a restore",
    }.get(trigger, "Backup")


def _destinations_for(environment, destination_ids, schedule) -> list[Destination]:
    organisation = environment.project.organisation
    owned = Destination.objects.filter(organisation=organisation)
    if destination_ids:
        wanted = {str(d) for d in destination_ids}
        valid = {str(d.id): d for d in owned if str(d.id) in wanted or d.name in wanted}
        found = {
            key for key in wanted if key in valid or any(d.name == key for d in valid.values())
        }
        missing = sorted(wanted - found)
        if missing:
            raise InvalidInput(
                f"Unknown destination: {', '.join(missing)}.",
                fields={
                    "destination": [f"No destination {m!r} in this organisation." for m in missing]
                },
            )
        return list(valid.values())
    if schedule is not None:
        chosen = list(schedule.destinations.all())
        if chosen:
            return chosen
    chosen = list(owned.filter(is_default=True)) or list(owned[:1])
    if not chosen:
        raise InvalidInput(
            "This organisation has no backup destination yet: create one first.",
            fields={"destination": ["No destination configured."]},
        )
    return chosen


def _targets_for(environment, kind, database) -> list[Database | None]:
    if kind == BackupKind.DATABASE:
        if database is not None:
            return [database]
        databases = list(environment.databases.order_by("name"))
        if not databases:
            raise InvalidInput(
                "This environment has no database to back up.", fields={"type": ["No database."]}
            )
        return databases
    if kind == BackupKind.FILESYSTEM and not environment.files_path:
        raise InvalidInput(
            "This environment has no files directory to back up.",
            fields={"type": ["The environment has no files directory."]},
        )
    if (
        kind == BackupKind.FULL
        and not environment.files_path
        and not environment.databases.exists()
    ):
        raise InvalidInput(
            "This environment has neither databases nor files.",
            fields={"type": ["Nothing to back up."]},
        )
    return [None]


def backup_name(environment: Environment, created_at: datetime, suffix: str = "") -> str:
    """``{organisation}-{project}-{environment}-{createdAt with ':' and '.' as '-'}Z``."""
    stamp = created_at.astimezone(UTC)
    text = stamp.strftime("%Y-%m-%dT%H-%M-%S-") + f"{stamp.microsecond // 1000:03d}Z"
    project = environment.project
    base = f"{project.organisation.slug}-{project.slug}-{environment.slug}-{text}"
    return f"{base}-{suffix}" if suffix else base


def _create_backup(
    *,
    environment,
    kind,
    database,
    destinations,
    description,
    trigger,
    user,
    schedule,
    schedule_rules,
    several,
) -> Backup:
    if (
        database is None
        and Backup.objects.filter(
            environment=environment, kind=kind, status__in=ACTIVE_STATUSES
        ).exists()
    ):
        raise Conflict(f"A {kind} backup of {environment} is already running.")
    created_at = timezone.now()
    suffix = ""
    if kind == BackupKind.DATABASE and several:
        suffix = database.slug
    elif kind != BackupKind.DATABASE:
        suffix = kind
    name = backup_name(environment, created_at, suffix)
    while Backup.objects.filter(name=name).exists():
        name = f"{name}-{uuid.uuid4().hex[:4]}"
    engine = database.engine if database else _full_engine(environment, kind)
    try:
        with transaction.atomic():
            backup = Backup.objects.create(
                organisation=environment.project.organisation,
                environment=environment,
                database=database,
                name=name,
                description=description[:500],
                kind=kind,
                method=BackupMethod.ARCHIVE
                if kind == BackupKind.FILESYSTEM
                else BackupMethod.LOGICAL,
                engine=engine,
                engine_version=(database.version if database else ""),
                trigger=trigger,
                schedule=schedule,
                schedule_rules=schedule_rules,
                requested_by=user if getattr(user, "pk", None) else None,
                created_at=created_at,
            )
    except IntegrityError as exc:
        running = Backup.objects.filter(database=database, status__in=ACTIVE_STATUSES).first()
        raise Conflict(
            f"A backup of {database} is already running"
            + (f" ({running.name})." if running else ".")
        ) from exc
    backup.destinations.set(destinations)
    return backup


def _full_engine(environment, kind) -> str:
    if kind == BackupKind.FILESYSTEM:
        return "files"
    first = environment.databases.order_by("name").first()
    return first.engine if first else "files"


def enqueue_backup(backup: Backup) -> None:
    task_id = async_task(
        "backups.tasks.run_backup",
        str(backup.id),
        task_name=f"backup {backup.name}",
        group="backups",
    )
    Backup.objects.filter(pk=backup.pk).update(task_id=task_id or "")


# --- abort, delete, verify, reap ---------------------------------------------------------


def backup_abort(*, backup: Backup) -> Backup:
    now = timezone.now()
    if Backup.objects.filter(pk=backup.pk, status=BackupStatus.SCHEDULED).update(
        status=BackupStatus.ABORTED, completed_at=now, message="Aborted before it started."
    ):
        _audit_abort(backup, was=BackupStatus.SCHEDULED)
        backup.refresh_from_db()
        return backup
    if not Backup.objects.filter(pk=backup.pk, status=BackupStatus.IN_PROGRESS).update(
        status=BackupStatus.ABORTING, updated_at=now
    ):
        backup.refresh_from_db()
        if backup.status != BackupStatus.ABORTING:
            raise Conflict(f"Only a running backup can be aborted; this one is {backup.status}.")
    else:
        _audit_abort(backup, was=BackupStatus.IN_PROGRESS)
    backup.refresh_from_db()
    return backup


def _audit_abort(backup: Backup, *, was: str) -> None:
    audit_record(
        organisation=backup.organisation_id,
        action="backup.abort",
        obj=backup,
        details={"status_before": was},
    )


# What holds a backup back from deletion while it runs or is being restored.
_RESTORING = ("scheduled", "in-progress")


def backup_download(*, backup: Backup, raw: bool = False) -> Download:
    """Open a completed backup's artifact for download (``backups.downloads``), recorded in
    the audit log once a copy opened."""
    download = backup_download_open(backup=backup, raw=raw)
    audit_record(
        organisation=backup.organisation_id,
        action="backup.download",
        obj=backup,
        details={"raw": raw, "filename": download.filename},
    )
    return download


def backup_delete(*, backup: Backup) -> Backup:
    """Mark for deletion and clean every destination asynchronously; the row stays for audit."""
    if backup.status in (BackupStatus.DELETING, BackupStatus.DELETED):
        return backup
    if backup.status in ACTIVE_STATUSES:
        raise Conflict("This backup is still running: abort it before deleting it.")
    # Through the reverse relation restores adds to Backup: backups does not import restores.
    if backup.restores.filter(status__in=_RESTORING).exists():
        raise Conflict("This backup is being restored; delete it when the restore has finished.")
    locked = backup.copies.locked(timezone.now()).order_by("-locked_until").first()
    if locked is not None:
        # The store would refuse: say when it will not, rather than leave it "deleting".
        raise Conflict(
            f"This backup is locked until {locked.locked_until.isoformat(timespec='seconds')} "
            f"(object lock on {locked.destination.name}); it cannot be deleted before then."
        )
    updated = Backup.objects.filter(pk=backup.pk, status=backup.status).update(
        status=BackupStatus.DELETING, updated_at=timezone.now()
    )
    if not updated:
        raise Conflict("This backup changed meanwhile; try again.")
    audit_record(
        organisation=backup.organisation_id,
        action="backup.delete",
        obj=backup,
        details={"status_before": backup.status, "size": backup.size},
    )
    transaction.on_commit(
        lambda: async_task(
            "backups.tasks.delete_backup", str(backup.id), task_name=f"delete {backup.name}"
        )
    )
    backup.refresh_from_db()
    return backup


class DeletedBackup(NamedTuple):
    """A backup ``backups_delete_batch`` marked for deletion, as much as its caller logs."""

    pk: uuid.UUID
    name: str
    kind: str
    size: int
    created_at: datetime


def backups_delete_batch(*, backups: Mapping[str | uuid.UUID, str]) -> list[DeletedBackup]:
    """``backup_delete`` for many backups at once: mark them ``deleting`` in one
    transaction and queue one cleanup task for all of their copies.

    ``backups`` maps each id to the status its caller read it with. As ``backup_delete``
    would refuse, a backup that is running or being restored is left alone, and so is
    one whose status changed since (already deleted or being deleted, say): the caller
    decided on what it read. Returns the backups marked, in the order given; the others
    are not in it. Keep a batch to a few hundred backups (one IN list, one task).
    """
    expected = {str(pk): status for pk, status in backups.items()}
    refused = (*ACTIVE_STATUSES, BackupStatus.DELETING, BackupStatus.DELETED)
    found: dict[str, DeletedBackup] = {}
    with transaction.atomic():
        # Locked (PostgreSQL; SQLite fails the transaction should another writer commit
        # meanwhile) until the UPDATE below, so what is returned is what was marked and a
        # restore that starts meanwhile waits. Selected by id alone, the status compared
        # here: given both, SQLite's planner walks the whole status index instead.
        candidates = (
            Backup.objects.select_for_update()
            .filter(pk__in=list(expected))
            .exclude(restores__status__in=_RESTORING)
            # As backup_delete refuses: a store with object lock would refuse the delete.
            .exclude(pk__in=BackupCopy.objects.locked(timezone.now()).values("backup_id"))
            .order_by()
            .values_list("pk", "status", "name", "kind", "size", "created_at")
        )
        for pk, status, name, kind, size, created_at in candidates:
            if status == expected[str(pk)] and status not in refused:
                found[str(pk)] = DeletedBackup(pk, name, kind, size or 0, created_at)
        if found:
            Backup.objects.filter(pk__in=[backup.pk for backup in found.values()]).update(
                status=BackupStatus.DELETING, updated_at=timezone.now()
            )
            ids = list(found)
            transaction.on_commit(
                lambda: async_task(
                    "backups.tasks.delete_backups", ids, task_name=f"delete {len(ids)} backups"
                )
            )
    return [found[str(pk)] for pk in backups if str(pk) in found]


def backup_delete_artifacts(*, backup: Backup) -> Backup:
    errors = []
    backends = DestinationBackends()
    for copy in backup.copies.select_related("destination").exclude(status=CopyStatus.DELETED):
        try:
            backend = backends[copy.destination]
            delete_artifact(backend, copy.key)
            discard_partial_artifacts(backend, copy.key)
        except Exception as exc:  # noqa: BLE001 - reported, retried later
            errors.append(f"{copy.destination.name}: {exc}")
            continue
        mark_copy(copy, CopyStatus.DELETED, file_exists=False)
    if errors:
        update_backup(backup, message="Deletion is pending; it failed on " + "; ".join(errors))
    else:
        update_backup(
            backup, status=BackupStatus.DELETED, message="Deleted from every destination."
        )
    return backup


def backup_verify(*, backup: Backup) -> bool:
    """Re-read every stored copy and compare its size and checksum with the recorded ones."""
    problems = []
    now = timezone.now()
    backends = DestinationBackends()
    for copy in backup.copies.select_related("destination").filter(status=CopyStatus.STORED):
        try:
            with open_artifact_stream(backends[copy.destination], copy.key) as stream:
                digest, size = sha256_of(stream)
        except ArtifactMissing:
            problems.append(f"{copy.destination.name}: the artifact is missing")
            BackupCopy.objects.filter(pk=copy.pk).update(
                file_exists=False, last_verified_at=now, error="missing"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - unreachable destination and the like
            problems.append(f"{copy.destination.name}: could not be read ({exc})")
            BackupCopy.objects.filter(pk=copy.pk).update(last_verified_at=now, error=str(exc))
            continue
        ok = size == backup.size and digest == backup.checksum_sha256
        if not ok:
            problems.append(
                f"{copy.destination.name}: size {size} / checksum {digest[:12]}… do not match "
                f"the recorded {backup.size} / {backup.checksum_sha256[:12]}…"
            )
        BackupCopy.objects.filter(pk=copy.pk).update(
            file_exists=True, last_verified_at=now, error="" if ok else "checksum mismatch"
        )
    message = "; ".join(problems) or "Every copy matches its recorded size and checksum."
    update_backup(backup, verified_at=now, verification_message=message)
    if problems:
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.VERIFICATION_FAILED,
            title=f"Backup {backup.name} could not be verified",
            message=message,
            environment=backup.environment,
            backup=backup,
            severity="critical",
        )
        return False
    alert_resolve(
        organisation=backup.organisation, kind=AlertKind.VERIFICATION_FAILED, backup=backup
    )
    return True


# A backup still scheduled this long after it was (re-)enqueued has probably lost its task.
REQUEUE_AFTER = timedelta(minutes=10)


def backups_requeue_lost(*, now: datetime | None = None) -> list[Backup]:
    """Enqueue again the backups left ``scheduled`` long after they were enqueued.

    A task can be lost between the request and a worker: the broker restarted without
    persistence, or could not be reached when the request committed. The row would wait
    for ever and block the next backup of its database. Enqueuing again is safe: a worker
    claims a backup once (``backup_claim``) and skips any other delivery.
    """
    now = now or timezone.now()
    requeued = []
    for backup in Backup.objects.filter(
        status=BackupStatus.SCHEDULED, updated_at__lt=now - REQUEUE_AFTER
    ):
        if not Backup.objects.filter(
            pk=backup.pk, status=BackupStatus.SCHEDULED, updated_at=backup.updated_at
        ).update(updated_at=now):
            continue  # started, aborted or requeued by someone else meanwhile
        try:
            enqueue_backup(backup)
        except Exception:  # noqa: BLE001 - the broker is still down: tried again later
            logger.warning("could not enqueue backup %s again yet", backup.id)
            continue
        logger.info("backup %s was still scheduled; enqueued it again", backup.id)
        requeued.append(backup)
    return requeued


def backups_reap_stale(*, now: datetime | None = None) -> list[Backup]:
    """Fail backups whose worker stopped sending heartbeats (it was killed or lost)."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
    reaped = []
    stale = Backup.objects.filter(
        status__in=[BackupStatus.IN_PROGRESS, BackupStatus.ABORTING], heartbeat_at__lt=limit
    ).select_related("environment__project__organisation")
    for backup in stale:
        final = (
            BackupStatus.ABORTED if backup.status == BackupStatus.ABORTING else BackupStatus.FAILED
        )
        message = (
            f"The worker running this backup stopped responding (last heartbeat "
            f"{backup.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); it probably died. "
            "Partial artifacts were removed."
        )
        # The status and its alert commit together: whoever sees "failed" sees why.
        with transaction.atomic():
            if not Backup.objects.filter(pk=backup.pk, status=backup.status).update(
                status=final, message=message, completed_at=now, updated_at=now
            ):
                continue
            backup.refresh_from_db()
            if final == BackupStatus.FAILED:
                alert_raise(
                    organisation=backup.organisation,
                    kind=AlertKind.BACKUP_FAILED,
                    title=f"Backup {backup.name} failed: its worker died",
                    message=message,
                    environment=backup.environment,
                    backup=backup,
                    severity="critical",
                )
        backends = DestinationBackends()
        for copy in backup.copies.select_related("destination").exclude(status=CopyStatus.STORED):
            try:
                backend = backends[copy.destination]
                discard_partial_artifacts(backend, copy.key)
                # An upload may have completed just before the worker died, unverified and
                # unrecorded: nothing under this backup's own key is kept unless stored.
                delete_artifact(backend, copy.key)
            except Exception:  # noqa: BLE001
                logger.exception("could not discard partial artifacts of %s", copy.key)
            mark_copy(copy, CopyStatus.FAILED, error="the worker died during the upload")
        reaped.append(backup)
    return reaped


def backups_discard_failed_uploads(
    *, now: datetime | None = None, within: timedelta = timedelta(hours=6)
) -> int:
    """Remove what failed uploads left on their stores; returns how many were removed.

    An upload that fails because the store went away cannot abort its S3 multipart upload
    either: the parts stay (and are billed) until someone aborts it. Nor can a copy whose
    upload completed but could not be checked be deleted then. Run with the periodic
    retry of deletions, this cleans up after an outage shorter than ``within`` once the
    store is back; a bucket lifecycle rule (AbortIncompleteMultipartUpload) covers longer.
    A failed copy's key belongs to its backup alone, so whatever is under it goes.
    """
    now = now or timezone.now()
    removed = 0
    copies = BackupCopy.objects.filter(
        status=CopyStatus.FAILED,
        backup__status__in=[BackupStatus.FAILED, BackupStatus.ABORTED],
        backup__completed_at__gte=now - within,
    ).select_related("destination")
    # Only kinds whose failed uploads can outlive the failure need cleaning after it.
    kinds = [kind for kind, backend in BACKENDS.items() if backend.leaves_unfinished_uploads]
    backends = DestinationBackends()
    for copy in copies.filter(destination__kind__in=kinds):
        try:
            backend = backends[copy.destination]
            removed += discard_partial_artifacts(backend, copy.key)
            delete_artifact(backend, copy.key)
        except Exception:  # noqa: BLE001 - still unreachable: the next run tries again
            logger.warning("could not discard partial uploads of %s yet", copy.key)
    return removed


# --- age keys ------------------------------------------------------------------------------


def age_keys_checked(*, recipients: list[str] | None = None, identity: str | None = None) -> dict:
    """The fields ``age_keys_update`` would write, every key checked; InvalidInput names
    the field and the key (never an identity's text)."""
    fields: dict = {}
    if recipients is not None:
        checked: list[str] = []
        problems = []
        for recipient in recipients:
            try:
                parse_recipient(recipient)
            except AgeKeyError as exc:
                problems.append(str(exc))
                continue
            if recipient.strip() not in checked:
                checked.append(recipient.strip())
        installation = [r for r in configured_age_recipients() if r not in checked]
        if len(checked) + len(installation) > MAX_AGE_RECIPIENTS:
            problems.append(
                f"at most {MAX_AGE_RECIPIENTS} recipients with the installation's "
                f"{len(installation)}"
            )
        if problems:
            raise InvalidInput(
                f"recipients: {'; '.join(problems)}", fields={"recipients": problems}
            )
        fields["recipients"] = checked
    if identity is not None:
        try:
            parsed = parse_identities(identity)
        except AgeKeyError as exc:
            raise InvalidInput(f"identity: {exc}", fields={"identity": [str(exc)]}) from None
        if identity.strip() and not parsed:
            message = "holds no AGE-SECRET-KEY-1… line"
            raise InvalidInput(f"identity: {message}", fields={"identity": [message]})
        fields["identity"] = "\n".join(identity_text(i).rstrip() for i in parsed)
    return fields


def age_keys_update(
    *,
    organisation: Organisation,
    recipients: list[str] | None = None,
    identity: str | None = None,
) -> AgeKeys:
    """Set the organisation's age recipients and/or identity (None: leave it; an empty
    identity removes it), checked by ``age_keys_checked``. New backups are encrypted to the
    recipients from now on; existing ones keep theirs until ``manage.py rewrap_age_backups``."""
    fields = age_keys_checked(recipients=recipients, identity=identity)
    keys, _ = AgeKeys.objects.get_or_create(organisation=organisation)
    before = {"recipients": list(keys.recipients or [])}
    for name, value in fields.items():
        setattr(keys, name, value)
    if fields:
        keys.save(update_fields=[*fields, "updated_at"])
        details = changes(before, {"recipients": list(keys.recipients or [])})
        # Whether the private identity was set or removed, never the identity itself.
        if "identity" in fields:
            details["own_decryption"] = "set" if fields["identity"] else "removed"
        audit_record(
            organisation=organisation,
            action="encryption.update",
            obj=AuditObject("encryption", str(keys.pk), organisation.name),
            details=details,
        )
    return keys
