"""The point-in-time restore: recover the backup's database to the moment in a private copy,
dump it from there into a scratch copy beside the target, check, swap."""

from __future__ import annotations

from datetime import UTC

from backups import workdirs
from backups.engines import EngineError
from backups.engines.postgresql import PostgreSQLEngine
from backups.services import connection_spec_for
from config.errors import ApplicationError
from pitr.coverage import pitr_check_target
from pitr.restore import recovered_copy, recovered_copy_dir
from restores import loading
from restores.artifacts import Counting, Progress, tmp_dir
from restores.models import Restore, RestorePhase
from restores.plan import Member, check_version, planned_members, replaced_text
from restores.services.steps import (
    Phases,
    check_swap_complete,
    fail,
    load_phase,
    safety_phase,
    start,
    update,
)


def execute_pitr(restore: Restore, phases: Phases) -> None:
    """Recover the backup's database to ``pitr_target`` in a private copy (base backup plus
    archived WAL, ``pitr.restore.recovered_copy``), dump it from there into a scratch copy
    beside the target, check the counts against the copy's, then swap as any restore does.
    The copy is stopped and removed whatever happens."""
    backup = restore.backup
    source = backup.database
    target = restore.pitr_target
    progress = Progress(restore)
    tag = restore.id.hex[:8]

    verify = start(restore, phases, RestorePhase.VERIFY)
    try:
        members = planned_members(restore)
        window = pitr_check_target(database=source, target=target)
        check_version(
            members[0].source_engine, window.base.engine_version, members[0].database, live=True
        )
    except ApplicationError as exc:
        phases.finish(verify, "ERROR")
        fail(restore, f"The target cannot take this point-in-time restore: {exc.message}", phases)
        return
    phases.finish(verify, base_backup=window.base.name, message=f"base backup {window.base.name}")
    if not safety_phase(restore, members, phases, progress):
        return

    when = f"{target.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    recover = start(restore, phases, RestorePhase.RECOVER)
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
            loaded = load_phase(
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
        fail(
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
        f"and archived WAL ({stopped}) and restored it into {restore.target_environment}, "
        f"replacing {replaced_text(restore.members) or members[0].label}."
    )
    check_swap_complete(restore, members, phases, progress, tag, summary, [])


def _load_recovered(
    restore: Restore, member: Member, copy_spec, *, tag: str, progress: Progress
) -> None:
    """Dump the database from the recovered copy straight into the member's scratch copy;
    the counts taken in the dump's snapshot become what the CHECK phase expects."""
    engine = PostgreSQLEngine()
    member.scratch = loading.scratch_spec(member.target, tag, purpose="restore")
    loading.prepare(member.scratch, like=member.target)
    update(restore, bytes_total=engine.estimate_size(copy_spec))
    progress.reset()
    with engine.open_dump(copy_spec) as dump:
        member.notes += loading.load(
            member.scratch,
            Counting(dump.stdout, progress.add),  # type: ignore[arg-type]
            tmp_dir=str(workdirs.current() or tmp_dir()),
            tick=progress.tick,
        )
        dump.finish()
    # Nobody writes to the private copy: counting it again gives the same answer.
    member.expected = dict(dump.row_counts) or engine.row_counts(copy_spec)
