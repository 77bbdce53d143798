"""Restores: request, execute, undo; test restores; reaping restores whose worker died.

A restore runs in phases, and nothing on the target changes before the last one:

1. VERIFY: read a stored copy, compare its size and SHA-256 with those the backup recorded,
   and check that the artifact's key is here (the first encrypted chunk authenticates).
2. SAFETY_BACKUP: when the target holds data, back it up first (a normal backup with
   ``trigger="safety"``, linked from the restore log; ``restore_undo`` restores it).
3. RESTORE: load every member into a scratch copy beside its target (``restores.loading``).
4. CHECK: compare per-table row counts of the scratch copies with those the backup recorded.
5. SWAP: put each scratch copy in place of its target.

A point-in-time restore (``pitr_target``) recovers the database to that moment in a private
copy (RECOVER, after SAFETY_BACKUP), dumps it from there into the scratch copy (RESTORE) and
checks the counts against the copy's own.

A failure in phases 1-4 drops the scratch copies and leaves the target exactly as it was.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.container import iter_container
from backups.engines import EngineError
from backups.engines.postgresql import PostgreSQLEngine
from backups.keys import KeyUnavailable, key_for_id
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.pipeline import ArtifactCorrupt, open_artifact
from backups.pitr import (
    discard_recovered_copy,
    pitr_check_target,
    pitr_validate_timestamp,
    recovered_copy,
    recovered_copy_dir,
)
from backups.services import backup_claim, backup_execute, backup_request, connection_spec_for
from config.errors import ApplicationError, Conflict, InvalidInput, NotFound, Unprocessable
from organizations.models import Environment
from restores import loading
from restores.artifacts import Counting, Fetched, Progress, fetch_verified, tmp_dir
from restores.models import ACTIVE_RESTORE_STATUSES, Restore, RestorePhase, RestoreStatus
from restores.plan import (
    PITR_KINDS,
    Member,
    check_version,
    family,
    plan_pitr_restore,
    plan_restore,
    source_version,
)

logger = logging.getLogger(__name__)

SAFETY_BACKUP_POLL = 1.0
NEW_TARGET_DISABLED = "targetType 'new' is disabled until orchestration exists"
TEST_RESTORE_FAILED = "Restore test failed"
EXTENSION_ENGINES = {"pgdump": "postgresql", "sql": "mysql", "sqlite3": "sqlite", "tar": "files"}


# --- requesting ----------------------------------------------------------------------------


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


# --- phases ---------------------------------------------------------------------------------


class _Phases:
    """Phase timings in the shape of ``Backup.phases``."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def start(self, name: str) -> dict:
        item = {"name": name, "status": "RUNNING", "started_at": timezone.now().isoformat()}
        self.items.append(item)
        return item

    @staticmethod
    def finish(item: dict, status: str = "SUCCESS", **extra) -> None:
        ended = timezone.now()
        item["status"] = status
        item["finished_at"] = ended.isoformat()
        started = datetime.fromisoformat(item["started_at"])
        item["duration_sec"] = round((ended - started).total_seconds(), 3)
        item.update(extra)

    def fail_running(self) -> None:
        for item in self.items:
            if item["status"] == "RUNNING":
                self.finish(item, "ERROR")


# --- loading into scratch copies and checking them --------------------------------------------


def _restore_jobs(member: Member) -> int:
    options = member.database.options if member.database else {}
    return int(
        (options or {}).get("restore_jobs") or getattr(settings, "STRONGBOX_RESTORE_JOBS", 2)
    )


def _member_for(members: list[Member], name: str) -> Member:
    """The plan entry for a container member (``database/<slug>.<ext>`` or ``files.tar``)."""
    slot = "files" if name == "files.tar" else name.rsplit(".", 1)[0]
    for member in members:
        if member.slot == slot:
            extension = name.rsplit(".", 1)[-1]
            engine = EXTENSION_ENGINES.get(extension, "")
            if family(engine) != family(member.target.engine):
                raise loading.RestoreFailed(
                    f"the backup's {name} is a {engine or extension} dump and cannot be loaded "
                    f"into {member.label} ({member.target.engine})"
                )
            return member
    raise loading.RestoreFailed(f"the backup holds {name}, which has no target here")


def _load_all(
    backup: Backup,
    fetched: Fetched,
    members: list[Member],
    *,
    tag: str,
    purpose: str,
    progress: Progress,
    scratch_dir: str | None = None,
) -> None:
    """Stream the artifact once, loading each member into its own fresh scratch copy."""

    def load(member: Member, stream: BinaryIO) -> None:
        directory = scratch_dir if member.target.engine in ("sqlite", "files") else None
        member.scratch = loading.scratch_spec(
            member.target, tag, purpose=purpose, directory=directory
        )
        loading.prepare(member.scratch, like=member.target)
        member.notes += loading.load(
            member.scratch,
            stream,
            jobs=_restore_jobs(member),
            tmp_dir=tmp_dir(),
            tick=progress.tick,
        )

    progress.reset()
    with fetched.open() as raw:
        plain = open_artifact(Counting(raw, progress.add), key_for=key_for_id)  # type: ignore[arg-type]
        if backup.kind != BackupKind.FULL:
            load(members[0], plain)
            return
        loaded = set()
        for name, stream in iter_container(plain):
            member = _member_for(members, name)
            load(member, stream)
            loaded.add(member.slot)
        missing = [m.label for m in members if m.slot not in loaded]
        if missing:
            raise loading.RestoreFailed(f"the backup holds nothing for {', '.join(missing)}")


def _count_problems(members: list[Member]) -> tuple[list[str], list[str]]:
    """(mismatches, notes) between the scratch copies' row counts and the recorded ones."""
    problems, notes = [], []
    for member in members:
        assert member.scratch is not None  # noqa: S101 - loaded before checking
        actual = loading.count(member.scratch)
        expected = member.expected
        if member.target.engine == "files" and not any(expected.values()):
            # Older files backups recorded no counts (zeros); nothing to compare with.
            notes.append(f"{member.label}: no entry counts recorded, not compared")
            continue
        keys = sorted(set(actual) | set(expected))
        wrong = [
            f"{key}: {expected.get(key, 0)} recorded, {actual.get(key, 0)} restored"
            for key in keys
            if actual.get(key, 0) != expected.get(key, 0)
        ]
        if wrong:
            shown = "; ".join(wrong[:10]) + (
                f"; and {len(wrong) - 10} more" if len(wrong) > 10 else ""
            )
            problems.append(f"{member.label}: {shown}")
    return problems, notes


def _discard_scratches(members: list[Member]) -> None:
    for member in members:
        if member.scratch is not None and not member.swapped:
            try:
                loading.discard(member.scratch)
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                logger.exception("could not drop the scratch copy %s", member.scratch.name)


# --- executing -----------------------------------------------------------------------------


def _update(restore: Restore, **fields) -> None:
    """Write fields with a queryset update (other processes read and write the row too)."""
    for name, value in fields.items():
        setattr(restore, name, value)
    Restore.objects.filter(pk=restore.pk).update(**fields)


def _fail(restore: Restore, message: str, phases: _Phases) -> None:
    _update(
        restore,
        status=RestoreStatus.FAILED,
        message=message[-8000:],
        phases=phases.items,
        completed_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    alert_raise(
        organisation=restore.organisation,
        kind=AlertKind.RESTORE_FAILED,
        title=f"Restore of {restore.backup.name} into {restore.target_environment} failed",
        message=message[-2000:],
        restore=restore,
        environment=restore.target_environment,
        severity="critical",
    )


def _start(restore: Restore, phases: _Phases, name: str) -> dict:
    item = phases.start(name)
    _update(restore, phase=name, phases=phases.items, heartbeat_at=timezone.now())
    return item


def restore_execute(*, restore: Restore) -> Restore:
    """Run a claimed restore to its end state. Never leaves it in-progress."""
    phases = _Phases()
    try:
        _execute(restore, phases)
    except Exception as exc:
        logger.exception("restore %s failed unexpectedly", restore.id)
        phases.fail_running()
        _fail(restore, f"Unexpected error: {exc}", phases)
    restore.refresh_from_db()
    return restore


def _execute(restore: Restore, phases: _Phases) -> None:
    if restore.pitr_target is not None:
        _execute_pitr(restore, phases)
        return
    backup = restore.backup
    environment = restore.target_environment
    progress = Progress(restore)
    tag = restore.id.hex[:8]

    verify = _start(restore, phases, RestorePhase.VERIFY)
    try:
        members = plan_restore(backup, environment)
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
        _fail(restore, f"The target cannot take this backup: {exc.message}", phases)
        return
    fetched, problems = fetch_verified(backup, progress)
    if fetched is None:
        phases.finish(verify, "ERROR")
        message = (
            "The backup's artifact failed verification, so nothing was restored and the "
            "target was not touched: " + "; ".join(problems)
        )
        _fail(restore, message, phases)
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
    if not _safety_phase(restore, members, phases, progress):
        return

    def load_artifact() -> None:
        _load_all(backup, fetched, members, tag=tag, purpose="restore", progress=progress)

    if not _load_phase(restore, members, phases, progress, load_artifact):
        return
    labels = ", ".join(m.label for m in members)
    summary = f"Restored {backup.name} into {restore.target_environment} ({labels})."
    _check_swap_complete(restore, members, phases, progress, tag, summary, problems)


def _safety_phase(restore, members, phases, progress) -> bool:
    """Back up the target when it holds data; False (and the restore failed) if that fails."""
    safety_item = _start(restore, phases, RestorePhase.SAFETY_BACKUP)
    try:
        holds_data = restore.take_safety_backup and any(
            loading.holds_data(m.target) for m in members
        )
    except EngineError as exc:
        phases.finish(safety_item, "ERROR")
        _fail(restore, f"The target cannot be reached, so nothing was restored: {exc}", phases)
        return False
    if not holds_data:
        phases.finish(safety_item, "SKIPPED")
        return True
    try:
        safety = _take_safety_backup(restore, members, progress)
        reason = safety.message or safety.status
    except ApplicationError as exc:
        safety, reason = None, exc.message
    if safety is None or safety.status != BackupStatus.COMPLETED:
        phases.finish(safety_item, "ERROR")
        _fail(
            restore,
            f"The safety backup of the target failed ({reason}); nothing was restored and "
            "the target was not touched.",
            phases,
        )
        return False
    phases.finish(safety_item, backup=safety.name)
    return True


def _load_phase(restore, members, phases, progress, load) -> bool:
    """Run ``load`` (filling each member's scratch copy); False (and failed) if it fails."""
    load_item = _start(restore, phases, RestorePhase.RESTORE)
    try:
        load()
    except (EngineError, ArtifactCorrupt, KeyUnavailable, OSError) as exc:
        _discard_scratches(members)
        phases.finish(load_item, "ERROR")
        _fail(restore, f"The load failed, so the target was left as it was: {exc}", phases)
        return False
    phases.finish(load_item, bytes=progress.bytes_done)
    _update(restore, bytes_done=progress.bytes_done)
    return True


def _check_swap_complete(restore, members, phases, progress, tag, summary, problems) -> None:
    """Compare the scratch copies' row counts, swap them in, and record the outcome."""
    check_item = _start(restore, phases, RestorePhase.CHECK)
    try:
        mismatches, notes = _count_problems(members)
    except EngineError as exc:
        mismatches, notes = [f"could not count the restored rows: {exc}"], []
    if mismatches:
        _discard_scratches(members)
        phases.finish(check_item, "ERROR")
        _fail(
            restore,
            "The restored data does not match the row counts the backup recorded, so the "
            "target was left as it was: " + "; ".join(mismatches),
            phases,
        )
        return
    phases.finish(check_item)

    swap_item = _start(restore, phases, RestorePhase.SWAP)
    for member in members:
        assert member.scratch is not None  # noqa: S101 - loaded above
        try:
            member.notes += loading.swap(member.target, member.scratch, tag=tag)
        except (EngineError, OSError) as exc:
            _discard_scratches(members)
            phases.finish(swap_item, "ERROR")
            done = [m.label for m in members if m.swapped]
            state = (
                f"Already restored: {', '.join(done)}; the rest was left as it was."
                if done
                else "The target was left as it was."
            )
            if isinstance(exc, loading.SwapIncomplete):
                # Undoing a half-done MariaDB swap failed too: the message says what is where.
                state = f"{member.label} was not left as it was: check it." + (
                    f" Already restored: {', '.join(done)}." if done else ""
                )
            _fail(restore, f"Swapping in {member.label} failed: {exc}. {state}", phases)
            return
        member.swapped = True
        progress.tick()
    phases.finish(swap_item)

    parts = [summary]
    if restore.safety_backup_id:
        parts.append(f"The previous data is in the safety backup {restore.safety_backup.name}.")
    notes += [f"{member.label}: {note}" for member in members for note in member.notes]
    parts += [note + "." for note in notes + problems]
    _update(
        restore,
        status=RestoreStatus.COMPLETED,
        phase="",
        phases=phases.items,
        message=" ".join(parts),
        completed_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    alert_resolve(organisation=restore.organisation, kind=AlertKind.RESTORE_FAILED, restore=restore)


# --- point in time -------------------------------------------------------------------------


def _execute_pitr(restore: Restore, phases: _Phases) -> None:
    """Recover the backup's database to ``pitr_target`` in a private copy (base backup plus
    archived WAL, ``backups.pitr.recovered_copy``), dump it from there into a scratch copy
    beside the target, check the counts against the copy's, then swap as any restore does.
    The copy is stopped and removed whatever happens."""
    backup = restore.backup
    source = backup.database
    target = restore.pitr_target
    progress = Progress(restore)
    tag = restore.id.hex[:8]

    verify = _start(restore, phases, RestorePhase.VERIFY)
    try:
        members = plan_pitr_restore(backup, restore.target_environment)
        window = pitr_check_target(database=source, target=target)
        check_version(
            members[0].source_engine, window.base.engine_version, members[0].database, live=True
        )
    except ApplicationError as exc:
        phases.finish(verify, "ERROR")
        _fail(restore, f"The target cannot take this point-in-time restore: {exc.message}", phases)
        return
    phases.finish(verify, base_backup=window.base.name, message=f"base backup {window.base.name}")
    if not _safety_phase(restore, members, phases, progress):
        return

    when = f"{target.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    recover = _start(restore, phases, RestorePhase.RECOVER)
    loaded = False
    try:
        with recovered_copy(
            database=source,
            target=target,
            workdir=recovered_copy_dir(tmp_dir(), tag),
            spec=connection_spec_for(source),
            tick=progress.tick,
        ) as copy:
            stopped = copy.result.stopped_at or "replayed all archived WAL up to the target"
            phases.finish(
                recover,
                base_backup=copy.result.base_backup.name,
                stopped_at=stopped,
                recovery_seconds=round(copy.result.seconds, 1),
                message=f"from base backup {copy.result.base_backup.name}: {stopped}",
            )
            loaded = _load_phase(
                restore,
                members,
                phases,
                progress,
                lambda: _load_recovered(restore, members[0], copy.spec, tag=tag, progress=progress),
            )
    except (ApplicationError, EngineError, OSError) as exc:
        if recover["status"] != "RUNNING":
            raise  # after recovery: not a recovery failure (the load phase reports its own)
        phases.finish(recover, "ERROR")
        _fail(
            restore,
            f"Recovering {source.name} to {when} failed, so the target was left as it was: "
            f"{getattr(exc, 'message', None) or exc}",
            phases,
        )
        return
    if not loaded:
        return
    summary = (
        f"Recovered {source.name} to {when} from base backup {copy.result.base_backup.name} "
        f"and archived WAL ({stopped}) and restored it into {restore.target_environment} "
        f"({members[0].label})."
    )
    _check_swap_complete(restore, members, phases, progress, tag, summary, [])


def _load_recovered(
    restore: Restore, member: Member, copy_spec, *, tag: str, progress: Progress
) -> None:
    """Dump the database from the recovered copy straight into the member's scratch copy;
    the counts taken in the dump's snapshot become what the CHECK phase expects."""
    engine = PostgreSQLEngine()
    member.scratch = loading.scratch_spec(member.target, tag, purpose="restore")
    loading.prepare(member.scratch, like=member.target)
    _update(restore, bytes_total=engine.estimate_size(copy_spec))
    progress.reset()
    with engine.open_dump(copy_spec) as dump:
        member.notes += loading.load(
            member.scratch,
            Counting(dump.stdout, progress.add),  # type: ignore[arg-type]
            jobs=_restore_jobs(member),
            tmp_dir=tmp_dir(),
            tick=progress.tick,
        )
        dump.finish()
    # Nobody writes to the private copy: counting it again gives the same answer.
    member.expected = dict(dump.row_counts) or engine.row_counts(copy_spec)


def _take_safety_backup(restore: Restore, members: list[Member], progress: Progress) -> Backup:
    """Back up the target now, in this task; returns the backup in its final state.

    Raises the ApplicationError of backup_request (e.g. a backup of it is already running).
    """
    # A point-in-time restore replaces one database: its safety backup is a logical one,
    # which "undo" can restore like any other.
    kind = BackupKind.DATABASE if restore.pitr_target else restore.backup.kind
    (safety,) = backup_request(
        environment=restore.target_environment,
        kind=kind,
        database=members[0].database if kind == BackupKind.DATABASE else None,
        description=f"Safety backup before restore {restore.id}",
        trigger=BackupTrigger.SAFETY,
        user=restore.requested_by,
    )
    _update(restore, safety_backup=safety)
    # backup_request also enqueued it; whoever claims it first runs it.
    claimed = backup_claim(backup_id=safety.id)
    if claimed is not None:
        return backup_execute(backup=claimed)
    while True:
        safety.refresh_from_db()
        if safety.is_final:
            return safety
        progress.tick(force=True)
        time.sleep(SAFETY_BACKUP_POLL)


# --- test restores -------------------------------------------------------------------------


def backup_test_restore(*, backup: Backup) -> bool:
    """Restore a backup into scratch copies, compare row counts, drop them; record the result.

    Sets ``verified_by_restore_at`` and ``verification_message`` on success; on a failure
    the message says why and a ``verification_failed`` alert is raised.
    """
    tag = uuid.uuid4().hex[:8]
    members: list[Member] = []
    fetched = None
    try:
        members = plan_restore(backup, backup.environment)
        fetched, problems = fetch_verified(backup, Progress(None))
        if fetched is None:
            return _record_test(backup, ok=False, detail="; ".join(problems))
        _load_all(
            backup,
            fetched,
            members,
            tag=tag,
            purpose="verify",
            progress=Progress(None),
            scratch_dir=tmp_dir(),
        )
        mismatches, notes = _count_problems(members)
    except (ApplicationError, EngineError, ArtifactCorrupt, KeyUnavailable, OSError) as exc:
        return _record_test(backup, ok=False, detail=getattr(exc, "message", None) or str(exc))
    finally:
        _discard_scratches(members)
        if fetched is not None:
            fetched.cleanup()
    if mismatches:
        return _record_test(backup, ok=False, detail="; ".join(mismatches))
    tables = sum(len(m.expected) for m in members if m.target.engine != "files")
    detail = f"{tables} table(s), every row count matches the backup's"
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
    from schedules.models import Schedule

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


# --- reaping -------------------------------------------------------------------------------


def restores_reap_stale(*, now: datetime | None = None) -> list[Restore]:
    """Fail restores whose worker stopped sending heartbeats (it was killed or lost).

    A restore waiting for its safety backup counts as alive while that backup's own
    heartbeat is fresh. Scratch copies are dropped; the live target was never touched
    before the swap, and the swap itself is atomic per database.
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
        message = (
            f"The worker running this restore stopped responding (last heartbeat "
            f"{last:%Y-%m-%d %H:%M:%S} UTC); it probably died. Scratch copies were removed; "
            "the target was only changed if the swap had already happened."
        )
        if not Restore.objects.filter(
            pk=restore.pk, status=RestoreStatus.IN_PROGRESS, heartbeat_at=restore.heartbeat_at
        ).update(status=RestoreStatus.FAILED, message=message, completed_at=now):
            continue
        restore.refresh_from_db()
        if restore.phase != RestorePhase.SWAP:
            _discard_scratches_of(restore)
        alert_raise(
            organisation=restore.organisation,
            kind=AlertKind.RESTORE_FAILED,
            title=f"Restore of {restore.backup.name} failed: its worker died",
            message=message,
            restore=restore,
            environment=restore.target_environment,
            severity="critical",
        )
        reaped.append(restore)
    return reaped


def _discard_scratches_of(restore: Restore) -> None:
    tag = restore.id.hex[:8]
    if restore.pitr_target is not None:
        # Only reachable when the reaper runs where the dead worker ran; else it stays.
        discard_recovered_copy(recovered_copy_dir(tmp_dir(), tag))
    try:
        if restore.pitr_target is not None:
            members = plan_pitr_restore(restore.backup, restore.target_environment)
        else:
            members = plan_restore(restore.backup, restore.target_environment)
    except ApplicationError:
        return
    for member in members:
        member.scratch = loading.scratch_spec(member.target, tag, purpose="restore")
    _discard_scratches(members)


__all__ = [
    "backup_test_restore",
    "backups_due_for_test_restore",
    "enqueue_restore",
    "restore_claim",
    "restore_execute",
    "restore_request",
    "restore_undo",
    "restores_reap_stale",
    "restores_test_due",
]
