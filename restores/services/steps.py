"""The building blocks every restore execution shares: phase timings, writing the row,
failing with an alert, the SAFETY_BACKUP, RESTORE and CHECK/SWAP phases, loading an artifact
into scratch copies and counting them, discarding scratch copies, the safety backup itself."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, TypeVar

from django.db import transaction
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups import workdirs
from backups.container import iter_container
from backups.engines import ConnectionSpec, EngineError
from backups.execution import Phases
from backups.keys import KeyUnavailable, artifact_keys
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.pipeline import ArtifactCorrupt, open_artifact
from backups.services import backup_claim, backup_execute, backup_request
from config.errors import ApplicationError
from restores import loading
from restores.artifacts import Counting, Fetched, Progress, tmp_dir
from restores.models import Restore, RestorePhase, RestoreStatus
from restores.plan import Member, family, replaced_text, restore_target_text

logger = logging.getLogger(__name__)

SAFETY_BACKUP_POLL = 1.0
SWAP_HEARTBEAT_SECONDS = 1.0
T = TypeVar("T")
EXTENSION_ENGINES = {"pgdump": "postgresql", "sql": "mysql", "sqlite3": "sqlite", "tar": "files"}


# --- loading into scratch copies and checking them --------------------------------------------


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


def load_all(
    backup: Backup,
    fetched: Fetched,
    members: list[Member],
    *,
    tag: str,
    purpose: str,
    progress: Progress,
    scratch_dir: str | None = None,
    scratch_for: Callable[[Member], ConnectionSpec] | None = None,
) -> None:
    """Stream the artifact once, loading each member into its own fresh scratch copy.

    ``scratch_for`` names each member's scratch copy instead of ``loading.scratch_spec``
    (a restore drill loads into a throwaway database of its own name, on its drill server).
    Loaders keep what they must (an option file, an encrypted spool) in the active job's
    private directory (``backups.workdirs``), else in the worker's temporary directory.
    """
    work_dir = str(workdirs.current() or tmp_dir())

    def load(member: Member, name: str, stream: BinaryIO) -> None:
        if scratch_for is not None:
            member.scratch = scratch_for(member)
        else:
            directory = scratch_dir if member.target.engine in ("sqlite", "files") else None
            member.scratch = loading.scratch_spec(
                member.target, tag, purpose=purpose, directory=directory
            )
        loading.prepare(member.scratch, like=member.target)
        member.notes += loading.load(
            member.scratch,
            stream,
            tmp_dir=work_dir,
            tick=progress.tick,
            reopen=lambda: _read_again(backup, fetched, name, progress),
        )

    progress.reset()
    with fetched.open() as raw:
        plain = open_artifact(
            Counting(raw, progress.add), **artifact_keys(backup.organisation, backup.key_id)
        )  # type: ignore[arg-type]
        if backup.kind != BackupKind.FULL:
            load(members[0], "", plain)
            return
        loaded = set()
        for name, stream in iter_container(plain):
            member = _member_for(members, name)
            load(member, name, stream)
            loaded.add(member.slot)
        missing = [m.label for m in members if m.slot not in loaded]
        if missing:
            raise loading.RestoreFailed(f"the backup holds nothing for {', '.join(missing)}")


@contextlib.contextmanager
def _read_again(backup: Backup, fetched: Fetched, name: str, progress: Progress):
    """The dump of one member (``name`` in a container, else the whole artifact) once more."""
    with fetched.open() as raw:
        plain = open_artifact(
            Counting(raw, lambda n: progress.tick()),
            **artifact_keys(backup.organisation, backup.key_id),
        )  # type: ignore[arg-type]
        if backup.kind != BackupKind.FULL:
            yield plain
            return
        for member_name, stream in iter_container(plain):
            if member_name == name:
                yield stream
                return
        raise loading.RestoreFailed(f"the backup no longer holds {name}")


def count_problems(members: list[Member]) -> tuple[list[str], list[str]]:
    """(mismatches, notes) between the scratch copies' row counts and the recorded ones."""
    problems, notes = [], []
    for member in members:
        assert member.scratch is not None  # noqa: S101 - loaded before checking
        problem, note = count_mismatch(member, loading.count(member.scratch))
        problems += [problem] if problem else []
        notes += [note] if note else []
    return problems, notes


def count_mismatch(member: Member, actual: dict[str, int]) -> tuple[str | None, str | None]:
    """(the mismatch, a note) between one member's restored counts and the recorded ones:
    the mismatch names each table that differs, with both counts."""
    expected = member.expected
    if member.target.engine == "files" and not any(expected.values()):
        # Older files backups recorded no counts (zeros); nothing to compare with.
        return None, f"{member.label}: no entry counts recorded, not compared"
    keys = sorted(set(actual) | set(expected))
    wrong = [
        f"{key}: {expected.get(key, 0)} recorded, {actual.get(key, 0)} restored"
        for key in keys
        if actual.get(key, 0) != expected.get(key, 0)
    ]
    if not wrong:
        return None, None
    shown = "; ".join(wrong[:10]) + (f"; and {len(wrong) - 10} more" if len(wrong) > 10 else "")
    return f"{member.label}: {shown}", None


def member_notes(members: list[Member]) -> list[str]:
    """What loading or swapping each member left out, named by member."""
    return [f"{member.label}: {note}" for member in members for note in member.notes]


def discard_scratches(members: list[Member]) -> None:
    for member in members:
        if member.scratch is not None and not member.swapped:
            try:
                loading.discard(member.scratch)
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                logger.exception("could not drop the scratch copy %s", member.scratch.name)


# --- writing the row, failing, starting a phase --------------------------------------------


def update(restore: Restore, **fields) -> None:
    """Write fields with a queryset update (other processes read and write the row too)."""
    for name, value in fields.items():
        setattr(restore, name, value)
    Restore.objects.filter(pk=restore.pk).update(**fields)


def fail(restore: Restore, message: str, phases: Phases) -> None:
    # The log and the alert name what the restore was to replace, not only the environment.
    replacing = replaced_text(restore.members)
    if replacing:
        message = f"{message} (It was to replace {replacing}.)"
    # The status and its alert commit together: whoever sees "failed" sees why.
    with transaction.atomic():
        update(
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
            title=f"Restore of {restore.backup.name} into {restore_target_text(restore)} failed",
            message=message[-2000:],
            restore=restore,
            environment=restore.target_environment,
            severity="critical",
        )


def start(restore: Restore, phases: Phases, name: str) -> dict:
    item = phases.start(name)
    update(restore, phase=name, phases=phases.items, heartbeat_at=timezone.now())
    return item


# --- the phases an ordinary and a point-in-time restore share ------------------------------


def safety_phase(restore, members, phases, progress) -> bool:
    """Back up the target when it holds data; False (and the restore failed) if that fails."""
    safety_item = start(restore, phases, RestorePhase.SAFETY_BACKUP)
    try:
        holds_data = restore.take_safety_backup and any(
            loading.holds_data(m.target) for m in members
        )
    except EngineError as exc:
        phases.finish(safety_item, "ERROR")
        fail(restore, f"The target cannot be reached, so nothing was restored: {exc}", phases)
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
        fail(
            restore,
            f"The safety backup of the target failed ({reason}); nothing was restored and "
            "the target was not touched.",
            phases,
        )
        return False
    phases.finish(safety_item, backup=safety.name)
    return True


def load_phase(restore, members, phases, progress, load) -> bool:
    """Run ``load`` (filling each member's scratch copy); False (and failed) if it fails."""
    load_item = start(restore, phases, RestorePhase.RESTORE)
    try:
        load()
    except (EngineError, ArtifactCorrupt, KeyUnavailable, OSError) as exc:
        discard_scratches(members)
        phases.finish(load_item, "ERROR")
        fail(restore, f"The load failed, so the target was left as it was: {exc}", phases)
        return False
    phases.finish(load_item, bytes=progress.bytes_done)
    update(restore, bytes_done=progress.bytes_done)
    return True


def check_swap_complete(restore, members, phases, progress, tag, summary, problems) -> None:
    """Compare the scratch copies' row counts, swap them in, and record the outcome."""
    check_item = start(restore, phases, RestorePhase.CHECK)
    try:
        mismatches, notes = count_problems(members)
    except EngineError as exc:
        mismatches, notes = [f"could not count the restored rows: {exc}"], []
    if mismatches:
        discard_scratches(members)
        phases.finish(check_item, "ERROR")
        fail(
            restore,
            "The restored data does not match the row counts the backup recorded, so the "
            "target was left as it was: " + "; ".join(mismatches),
            phases,
        )
        return
    phases.finish(check_item)

    if not swap_phase(restore, members, phases, progress, tag):
        return

    parts = [summary]
    if restore.safety_backup_id:
        parts.append(f"The previous data is in the safety backup {restore.safety_backup.name}.")
    notes += member_notes(members)
    parts += [note + "." for note in notes + problems]
    update(
        restore,
        status=RestoreStatus.COMPLETED,
        phase="",
        phases=phases.items,
        message=" ".join(parts),
        completed_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    alert_resolve(organisation=restore.organisation, kind=AlertKind.RESTORE_FAILED, restore=restore)


# --- the SWAP phase: all members or none ------------------------------------------------


def swap_phase(restore, members, phases, progress, tag) -> bool:
    """Swap every member in, keeping each previous target until all are in; then drop the
    kept copies. On a failure put every swapped member back, last first, and fail the
    restore saying which; False then. A kept copy is only dropped once all are swapped."""
    swap_item = start(restore, phases, RestorePhase.SWAP)
    swapped: list[tuple[Member, loading.Swapped]] = []

    def roll_back(failed: Member | None, exc: Exception) -> bool:
        discard_scratches(members)
        put_back = put_back_members(swapped, tag, progress)
        phases.finish(swap_item, "ERROR")
        fail(restore, _swap_failure(members, failed, exc, put_back), phases)
        return False

    for member in members:
        assert member.scratch is not None  # noqa: S101 - loaded before the swap
        try:
            result = with_heartbeat(
                progress, lambda m=member: loading.swap_keeping(m.target, m.scratch, tag=tag)
            )
            member.swapped = True
            member.notes += result.notes
            swapped.append((member, result))
            progress.tick()
        except Exception as exc:  # noqa: BLE001 - whatever it was, every member goes back
            return roll_back(member, exc)
    try:
        # The commit point: every member is in. A worker that dies from here on leaves kept
        # copies that the reaper drops (the restore goes forward) instead of putting back.
        phases.finish(swap_item)
        update(restore, phases=phases.items, heartbeat_at=timezone.now())
    except Exception as exc:  # noqa: BLE001 - not recorded: not committed, so all go back
        return roll_back(None, exc)
    for member, result in swapped:
        if result.kept is None:
            continue
        try:
            with_heartbeat(progress, lambda kept=result.kept: loading.drop_kept(kept))
        except Exception:  # noqa: BLE001 - the restore is done; a leftover only costs space
            logger.exception("could not drop the kept copy %s", result.kept.name)
            member.notes.append(f"its previous copy {result.kept.name} could not be dropped")
    return True


def with_heartbeat(progress: Progress, work: Callable[[], T]) -> T:
    """Run ``work`` (Django-free: no app-database queries) on a thread while this one keeps
    the heartbeat fresh. A swap may wait on a lock (MariaDB's RENAME TABLE on a metadata
    lock) for longer than the heartbeat timeout; the reaper must not take it for dead."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-swap") as pool:
        future = pool.submit(work)
        while True:
            try:
                return future.result(timeout=SWAP_HEARTBEAT_SECONDS)
            except TimeoutError:
                try:
                    progress.tick(force=True)
                except Exception:  # noqa: BLE001 - the work's outcome matters more
                    logger.exception("could not write the restore's heartbeat")


def put_back_members(
    swapped: list[tuple[Member, loading.Swapped]], tag: str, progress: Progress
) -> tuple[list[str], list[str]]:
    """Put every swapped member's previous contents back, last first.

    Returns (the labels put back, a sentence per member that could not be, saying what it
    holds and where its previous contents are kept)."""
    done, stuck = [], []
    for member, result in reversed(swapped):
        try:
            with_heartbeat(
                progress, lambda m=member, r=result: loading.put_back(m.target, r.kept, tag=tag)
            )
        except Exception as exc:  # noqa: BLE001 - the others must still be put back
            logger.exception("could not put %s back", member.label)
            where = (
                f"its previous data is kept as {result.kept.name}"
                if result.kept is not None
                else "it did not exist before"
            )
            stuck.append(f"{member.label} could not be put back ({exc}); {where}")
            continue
        done.append(member.label)
    return done, stuck


def _swap_failure(
    members: list[Member],
    failed: Member | None,
    exc: Exception,
    put_back: tuple[list[str], list[str]],
) -> str:
    done, stuck = put_back
    if failed is None:
        parts = [f"Every member was swapped in, but recording that failed: {exc}."]
    elif isinstance(exc, loading.SwapIncomplete):
        # Undoing its own half-done swap failed too: the message says what is where.
        parts = [f"Swapping in {failed.label} failed: {exc}."]
        parts.append(f"{failed.label} was not left as it was: check it.")
    else:
        parts = [
            f"Swapping in {failed.label} failed: {exc}.",
            f"{failed.label} was left as it was.",
        ]
    if done:
        parts.append(f"Put back as they were: {', '.join(reversed(done))}.")
    parts += [f"{sentence}." for sentence in stuck]
    later = members[members.index(failed) + 1 :] if failed is not None else []
    if later:
        parts.append(f"Not touched: {', '.join(m.label for m in later)}.")
    if not stuck and not isinstance(exc, loading.SwapIncomplete):
        parts.append("The target was left as it was.")
    return " ".join(parts)


# --- the safety backup ---------------------------------------------------------------------


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
    update(restore, safety_backup=safety)
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
