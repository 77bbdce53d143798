"""Restore drills: request, claim, run, schedule and reap them.

A drill proves that a backup restores, and measures how long that takes. It reads the
artifact as a restore does (``restores.artifacts.fetch_verified``: size, checksum, key),
streams it into a NEW throwaway database through the restore's own load
(``restores.services.steps.load_all``: the same ``restores.loading`` code, the same private
work directory and loader processes), compares every table's row count with the counts
the backup recorded (``steps.count_mismatch``) and, for PostgreSQL, every table's SHA-256
with the one the backup read from its dump stream (``checksum_comparison``: a changed
byte in one table's data names that table), and drops the throwaway database in a
``finally``. For a files backup the tree is extracted into the job's private directory and
each entry's type, size and SHA-256 is compared with the archive's own.

What it never touches: the source database and every database a restore could target.
The throwaway database is named ``<policy prefix><drill short id>`` on the drill server
(the source's own server unless the policy names another); SQLite and files drills use a
path inside the job's private 0700 directory. A name that a registered database uses is
refused before anything is created.

RTO (``Drill.rto_seconds``): from the start of the run, before the artifact is read, to the
moment the throwaway database answered the row-count queries and every count matched (the
checksums are compared after it: reading every table again is the drill's, not recovery's). It
is what a real recovery into a fresh server would take (fetch, verify, load, check), less
the swap, which is a rename.

A worker killed mid-drill leaves a ``running`` drill whose heartbeat goes stale: the tick
(``drills_tick``) fails it, naming the phase it died in (``Drill.phase``: verifying,
restoring, comparing, dropping), kills its loaders (``backups.workdirs``) and drops the
throwaway database whose name the row recorded before the database was created. A failed
drill is not retried: the next one (scheduled, or asked for) is a new drill.

A ``scheduled`` drill whose task was lost (the broker restarted without persistence, or
could not be reached when the request committed) would block its database's next drills
for ever: the tick enqueues it again once per ``REQUEUE_AFTER`` (``drills_requeue_lost``),
as ``backups_requeue_lost`` does for backups; ``drill_claim`` makes a second delivery
harmless.

Scheduling: each enabled policy's slots come from its cron (or frequency) in its time
zone (``schedules.timing``, ``schedules.models.due_slot``); the tick claims a due slot
with a conditional UPDATE of ``last_slot_at`` in the same transaction as the drill's
request, so two ticks never start the same slot twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups import workdirs
from backups.engines import ConnectionSpec, EngineError, get_engine
from backups.keys import KeyUnavailable, artifact_keys
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.pipeline import ArtifactCorrupt, open_artifact
from backups.services import REQUEUE_AFTER, connection_spec_for
from config.errors import ApplicationError, Conflict, InvalidInput, Unprocessable
from drills.models import Drill, DrillPhase, DrillPolicy, DrillStatus, DrillTrigger
from drills.validation import policy_problems
from organizations.hostpolicy import host_problem
from organizations.models import Database, Environment
from restores import loading
from restores.artifacts import Fetched, Progress, fetch_verified, tmp_dir
from restores.plan import Member
from restores.services.steps import count_mismatch, discard_scratches, load_all, with_heartbeat
from schedules.timing import ScheduleError

logger = logging.getLogger(__name__)

SERVER_ENGINES = ("postgresql", "mysql", "mariadb")
DRILLABLE_ENGINES = (*SERVER_ENGINES, "sqlite")
HEARTBEAT_INTERVAL = 0.5
POLICY_FIELDS = (
    "enabled",
    "cron",
    "frequency",
    "timezone",
    "target_host",
    "target_port",
    "target_username",
    "target_password",
    "name_prefix",
    "rto_objective_seconds",
)


# --- the policy ----------------------------------------------------------------------------


def drill_policy_upsert(*, database: Database, **fields: Any) -> DrillPolicy:
    """Create or change a database's drill policy; fields left out keep their value.

    ``target_password`` None (or left out) keeps the stored one. Every problem is an
    ``InvalidInput`` naming its field as the domain does (``cron``, ``target_host``).
    """
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"unknown drill policy fields: {sorted(unknown)}")
    policy = DrillPolicy.objects.filter(database=database).first() or DrillPolicy(database=database)
    if fields.get("target_password") is None:
        fields.pop("target_password", None)
    for name, value in fields.items():
        setattr(policy, name, "" if value is None and name not in _NULLABLE else value)
    # One of the two says when: setting one alone clears the other.
    if fields.get("cron") and "frequency" not in fields:
        policy.frequency = ""
    if fields.get("frequency") and "cron" not in fields:
        policy.cron = ""
    problems = policy_problems(
        cron=policy.cron,
        frequency=policy.frequency,
        timezone=policy.timezone,
        name_prefix=policy.name_prefix,
        target_port=policy.target_port,
    )
    if policy.target_host:
        if database.engine not in SERVER_ENGINES:
            problems["target_host"] = (
                f"A {database.get_engine_display()} drill runs in a temp file."
            )
        elif problem := host_problem(database.organisation, policy.target_host, policy.target_port):
            problems["target_host"] = problem
    if problems:
        first = next(iter(problems))
        raise InvalidInput(
            f"{first}: {problems[first]}", fields={k: [v] for k, v in problems.items()}
        )
    if policy.cron:
        policy.cron = " ".join(policy.cron.split())
    # The schedule's anchor: a new or changed policy back-fills no slot from before.
    policy.updated_at = timezone.now()
    policy.save()
    return policy


_NULLABLE = ("target_port", "rto_objective_seconds")


# --- requesting and claiming ---------------------------------------------------------------


def newest_drillable_backup(*, environment: Environment, database: Database | None):
    """The newest completed backup a drill of ``database`` (None: the environment's files)
    restores: one of that database alone, or a files backup; never a safety backup."""
    backups = Backup.objects.filter(environment=environment, status=BackupStatus.COMPLETED)
    if database is not None:
        backups = backups.filter(database=database, kind=BackupKind.DATABASE)
    else:
        backups = backups.filter(kind=BackupKind.FILESYSTEM)
    return backups.exclude(trigger=BackupTrigger.SAFETY).order_by("-created_at").first()


def drill_request(
    *,
    database: Database | None = None,
    environment: Environment | None = None,
    backup: Backup | None = None,
    trigger: str = DrillTrigger.MANUAL,
    user=None,
    enqueue: bool = True,
) -> Drill:
    """Record a drill ``scheduled`` and enqueue it (on commit).

    ``database`` drills that database's backups; without it, ``environment``'s files
    backups. ``backup`` (else the newest completed one) must be a completed backup of it.
    A drill of the same database already scheduled or running is a ``Conflict``.
    """
    if database is not None:
        environment = database.environment
        if database.engine not in DRILLABLE_ENGINES:
            raise Unprocessable(f"Drills of {database.get_engine_display()} are not supported.")
    if environment is None:
        raise TypeError("drill_request needs a database or an environment")
    what = database.name if database is not None else f"the files of {environment}"
    if backup is None:
        backup = newest_drillable_backup(environment=environment, database=database)
        if backup is None:
            raise Unprocessable(f"{what} has no completed backup to drill yet.")
    else:
        _check_backup(backup, environment=environment, database=database, what=what)
    policy = DrillPolicy.objects.filter(database=database).first() if database else None
    try:
        with transaction.atomic():
            drill = Drill.objects.create(
                environment=environment,
                database=database,
                backup=backup,
                trigger=trigger,
                requested_by=user,
                rto_objective_seconds=policy.rto_objective_seconds if policy else None,
            )
    except IntegrityError as exc:
        raise Conflict(f"A drill of {what} is already scheduled or running.") from exc
    if enqueue:
        # robust: the row is committed; a broker that is down must not turn the request
        # into an error (drills_requeue_lost enqueues it again later).
        transaction.on_commit(lambda: enqueue_drill(drill), robust=True)
    return drill


def _check_backup(backup: Backup, *, environment, database, what: str) -> None:
    own = (
        backup.database_id == database.pk and backup.kind == BackupKind.DATABASE
        if database is not None
        else backup.environment_id == environment.pk and backup.kind == BackupKind.FILESYSTEM
    )
    if not own:
        message = f"Not a backup of {what} alone."
        raise InvalidInput(f"backup: {message}", fields={"backup": [message]})
    if backup.status != BackupStatus.COMPLETED:
        message = f"The backup is {backup.status}; only a completed backup can be drilled."
        raise Unprocessable(message, fields={"backup": [message]})


def enqueue_drill(drill: Drill) -> None:
    task_id = async_task(
        "drills.tasks.run_drill", str(drill.id), task_name=f"drill {drill.id}", group="drills"
    )
    Drill.objects.filter(pk=drill.pk).update(task_id=task_id or "")


def drills_requeue_lost(*, now: datetime | None = None) -> list[Drill]:
    """Enqueue again the drills left ``scheduled`` ``REQUEUE_AFTER`` after they were
    enqueued (their task was lost); each at most once per interval, never a started one."""
    now = now or timezone.now()
    requeued = []
    for drill in Drill.objects.filter(
        status=DrillStatus.SCHEDULED, enqueued_at__lt=now - REQUEUE_AFTER
    ):
        if not Drill.objects.filter(
            pk=drill.pk, status=DrillStatus.SCHEDULED, enqueued_at=drill.enqueued_at
        ).update(enqueued_at=now):
            continue  # started, or requeued by another tick meanwhile
        try:
            enqueue_drill(drill)
        except Exception:  # noqa: BLE001 - the broker is still down: tried again later
            logger.warning("could not enqueue drill %s again yet", drill.id)
            continue
        logger.info("drill %s was still scheduled; enqueued it again", drill.id)
        requeued.append(drill)
    return requeued


def drill_claim(*, drill_id) -> Drill | None:
    """Move a scheduled drill to running; None when another worker (or nobody) may run it."""
    now = timezone.now()
    claimed = Drill.objects.filter(pk=drill_id, status=DrillStatus.SCHEDULED).update(
        status=DrillStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if claimed != 1:
        return None
    return Drill.objects.select_related(
        "environment__project__organisation", "database", "backup"
    ).get(pk=drill_id)


# --- running -------------------------------------------------------------------------------


@dataclass
class DrillProgress(Progress):
    """The restore's progress reporter, writing the drill's heartbeat instead."""

    drill_id: Any = None

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < HEARTBEAT_INTERVAL:
            return
        self.last_write = now
        Drill.objects.filter(pk=self.drill_id).update(heartbeat_at=timezone.now())


@dataclass
class Outcome:
    """What a run found, before it is written to the row."""

    passed: bool = False
    message: str = ""
    rto_seconds: float | None = None
    expected_rows: int | None = None
    restored_rows: int | None = None
    problems: list[str] = field(default_factory=list)


def drill_job(drill: Drill) -> str:
    """The drill's private directory in the temporary directory (``backups.workdirs``)."""
    return f"drill-{drill.id.hex}"


def drill_server(database: Database, policy: DrillPolicy | None) -> ConnectionSpec:
    """Where throwaway databases of ``database``'s drills are created: its own server, or
    the policy's, with the host checked against the organisation's host policy on connect."""
    source = connection_spec_for(database)
    if policy is None or not policy.target_host:
        return source
    return replace(
        source,
        host=policy.target_host,
        port=policy.target_port,
        user=policy.target_username,
        password=policy.target_password,
    )


def throwaway_spec(drill: Drill, work_dir: str) -> tuple[ConnectionSpec, ConnectionSpec]:
    """(the throwaway database, what it is created like): prefix + the drill's short id."""
    database = drill.database
    policy = DrillPolicy.objects.filter(database=database).first() if database else None
    prefix = policy.name_prefix if policy else "strongbox_drill_"
    name = f"{prefix}{drill.short_id}"
    if database is None:
        spec = ConnectionSpec(engine="files", name=os.path.join(work_dir, name))
        return spec, spec
    if database.engine == "sqlite":
        spec = ConnectionSpec(engine="sqlite", name=os.path.join(work_dir, f"{name}.sqlite3"))
        return spec, spec
    server = drill_server(database, policy)
    # Created with the source's encoding and locale when it is on the same server (a read
    # of pg_database: the source itself is not opened).
    return replace(server, name=name), replace(server, name=database.database_name)


def _refuse_registered(spec: ConnectionSpec) -> None:
    """A throwaway name is never one a registered database uses (on any server)."""
    if spec.engine in SERVER_ENGINES and Database.objects.filter(database_name=spec.name).exists():
        raise Unprocessable(
            f"{spec.name!r} is the name of a registered database; a drill never touches one."
        )


def _enter(drill: Drill, phase: str) -> None:
    """Record the phase the drill starts (with a heartbeat): what the reaper names."""
    Drill.objects.filter(pk=drill.pk, status=DrillStatus.RUNNING).update(
        phase=phase, heartbeat_at=timezone.now()
    )


def drill_execute(*, drill: Drill) -> Drill:
    """Run a claimed drill to its end (see the module docstring); returns it, finished."""
    started = time.monotonic()
    with workdirs.active(tmp_dir(), drill_job(drill)) as work_dir:
        outcome = _run(drill, str(work_dir), started)
    _finish(drill, outcome)
    drill.refresh_from_db()
    return drill


def _run(drill: Drill, work_dir: str, started: float) -> Outcome:
    backup = drill.backup
    if backup is None:
        return Outcome(message="The backup to drill no longer exists.")
    members: list[Member] = []
    fetched: Fetched | None = None
    progress = DrillProgress(None, drill_id=drill.pk)
    try:
        throwaway, like = throwaway_spec(drill, work_dir)
        _refuse_registered(throwaway)
        Drill.objects.filter(pk=drill.pk).update(throwaway_name=throwaway.name)
        label = drill.database.name if drill.database else "files"
        members = [
            Member(
                slot="",
                label=label,
                target=like,
                expected=dict(backup.row_counts),
                source_engine=backup.engine,
            )
        ]
        _enter(drill, DrillPhase.VERIFYING)
        fetched, problems = fetch_verified(backup, progress)
        if fetched is None:
            return Outcome(message="The backup could not be read: " + "; ".join(problems) + ".")
        _enter(drill, DrillPhase.RESTORING)
        load_all(
            backup,
            fetched,
            members,
            tag=drill.short_id,
            purpose="drill",
            progress=progress,
            scratch_for=lambda member: throwaway,
        )
        _enter(drill, DrillPhase.COMPARING)
        return _check(backup, fetched, members[0], throwaway, started, progress)
    except (ApplicationError, EngineError, ArtifactCorrupt, KeyUnavailable, OSError) as exc:
        detail = getattr(exc, "message", None) or str(exc)
        return Outcome(message=f"The drill failed: {detail}")
    finally:
        # Always: a passed, failed or crashed drill leaves no throwaway database behind.
        if any(member.scratch is not None for member in members):
            _enter(drill, DrillPhase.DROPPING)
            # A drop may wait on a lock: the heartbeat stays fresh meanwhile.
            with_heartbeat(progress, lambda: discard_scratches(members))
        if fetched is not None:
            fetched.cleanup()


def _check(
    backup: Backup,
    fetched: Fetched,
    member: Member,
    throwaway: ConnectionSpec,
    started: float,
    progress: DrillProgress,
) -> Outcome:
    # Counting big tables (or waiting on a lock) outlasts the heartbeat timeout: it runs
    # on a thread while this one keeps the heartbeat fresh, so the reaper leaves it alone.
    actual = with_heartbeat(progress, lambda: loading.count(throwaway))
    # The database answered with all its rows: that is the recovery point in time.
    rto = time.monotonic() - started
    outcome = Outcome(
        rto_seconds=rto,
        expected_rows=sum(member.expected.values()),
        restored_rows=sum(actual.values()),
    )
    mismatch, note = count_mismatch(member, actual)
    if mismatch:
        outcome.problems.append(mismatch)
    checksums = None
    if throwaway.engine == "postgresql" and backup.table_checksums:
        miscounted = {k for k in member.expected if member.expected[k] != actual.get(k, 0)}
        checksums = checksum_comparison(backup.table_checksums, throwaway, skip=miscounted)
        outcome.problems += checksums.problems
    if throwaway.engine == "files":
        outcome.problems += files_problems(backup, fetched, throwaway.name)
    if outcome.problems:
        outcome.message = (
            "The restored data does not match the backup: " + "; ".join(outcome.problems) + "."
        )
        return outcome
    tables = len(actual)
    what = "entries" if throwaway.engine == "files" else "table(s)"
    checked = f"{tables} {what}, {outcome.restored_rows} rows, every count matches the backup's"
    if throwaway.engine == "files":
        checked = f"{outcome.restored_rows} entries, every type, size and checksum matches"
    if checksums is not None:
        checked += f", {checksums.compared} table checksum(s) match"
    parts = [f"Restored in {rto:.1f} s: {checked}."]
    if note:
        parts.append(note + ".")
    if checksums is not None:
        parts += [f"{n}." for n in checksums.notes]
    parts += [f"{n}." for n in member.notes]
    return replace(outcome, passed=True, message=" ".join(parts))


@dataclass
class ChecksumComparison:
    compared: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def checksum_comparison(
    recorded: dict[str, dict], throwaway: ConnectionSpec, *, skip=frozenset(), limit: int = 10
) -> ChecksumComparison:
    """Each restored table's COPY text hashed as the backup hashed it from the dump stream
    (``PostgreSQLEngine.copy_digests``), against the recorded SHA-256. A table the backup
    could not hash, or that cannot be read back the same way, is "checksum not compared",
    never a failure; ``skip`` (tables whose count already differs) is not hashed again."""
    result = ChecksumComparison()
    not_compared: dict[str, list[str]] = {}
    by_encoding: dict[str, list[tuple[str, str, list[str]]]] = {}
    for key, entry in recorded.items():
        if key in skip:
            continue
        if "sha256" not in entry or "schema" not in entry:
            not_compared.setdefault("the backup recorded none", []).append(key)
            continue
        table = (entry["schema"], entry["table"], entry["columns"])
        by_encoding.setdefault(entry.get("encoding", ""), []).append(table)
    engine = get_engine("postgresql")
    wrong = []
    for encoding, tables in by_encoding.items():
        digests = engine.copy_digests(throwaway, tables, encoding)
        for key, digest in digests.items():
            if digest.startswith("not compared: "):
                not_compared.setdefault(digest.removeprefix("not compared: "), []).append(key)
            elif digest != recorded[key]["sha256"]:
                wrong.append(f"table {key}: checksum differs")
            else:
                result.compared += 1
    result.problems = wrong[:limit] + ([f"and {len(wrong) - limit} more"] if wrong[limit:] else [])
    for reason, keys in not_compared.items():
        shown = ", ".join(sorted(keys)[:limit]) + (" …" if len(keys) > limit else "")
        result.notes.append(f"checksum not compared for {len(keys)} table(s) ({reason}): {shown}")
    return result


def files_problems(backup: Backup, fetched: Fetched, root: str, *, limit: int = 10) -> list[str]:
    """The entries of the extracted tree under ``root`` that differ from the archive's:
    missing, of another type, size or SHA-256, link target; and entries not in the archive.
    The artifact is read a second time, through the same decrypting reader."""
    problems: list[str] = []
    seen: set[str] = set()
    with fetched.open() as raw:
        plain = open_artifact(raw, **artifact_keys(backup.organisation, backup.key_id))
        with tarfile.open(fileobj=plain, mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                name = os.path.normpath(info.name)
                seen.add(name)
                problem = _entry_problem(tar, info, os.path.join(root, name), name)
                if problem:
                    problems.append(problem)
    for directory, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            name = os.path.relpath(os.path.join(directory, entry), root)
            if name not in seen:
                problems.append(f"{name}: restored but not in the backup")
    shown = problems[:limit]
    if len(problems) > limit:
        shown.append(f"and {len(problems) - limit} more")
    return shown


def _entry_problem(tar: tarfile.TarFile, info: tarfile.TarInfo, path: str, name: str):
    if info.issym():
        if not os.path.islink(path):
            return f"{name}: a symlink in the backup, missing or not a link restored"
        if os.readlink(path) != info.linkname:
            return (
                f"{name}: links to {info.linkname!r} in the backup, {os.readlink(path)!r} restored"
            )
        return None
    if info.isdir():
        return None if os.path.isdir(path) else f"{name}: a directory in the backup, missing"
    if not info.isreg():
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        return f"{name}: a file of {info.size} bytes in the backup, missing restored"
    size = os.path.getsize(path)
    if size != info.size:
        return f"{name}: {info.size} bytes in the backup, {size} restored"
    archived = tar.extractfile(info)
    expected = _sha256(archived) if archived is not None else ""
    with open(path, "rb") as handle:
        restored = _sha256(handle)
    if expected != restored:
        return f"{name}: SHA-256 {expected[:12]}… in the backup, {restored[:12]}… restored"
    return None


def _sha256(stream) -> str:
    digest = hashlib.sha256()
    while data := stream.read(1 << 20):
        digest.update(data)
    return digest.hexdigest()


# --- recording the outcome, alerts ---------------------------------------------------------


def _subject(drill: Drill) -> str:
    return drill.database.name if drill.database else f"the files of {drill.environment}"


def _dedup(kind: str, drill: Drill) -> str:
    if drill.database_id:
        return f"{kind}:database:{drill.database_id}"
    return f"{kind}:environment:{drill.environment_id}"


def _finish(drill: Drill, outcome: Outcome, *, only_if_heartbeat=None) -> bool:
    """Write the outcome (conditional on the drill still running) with its alerts, in one
    transaction; False when it no longer ran (the reaper failed it meanwhile)."""
    now = timezone.now()
    running = Drill.objects.filter(pk=drill.pk, status=DrillStatus.RUNNING)
    if only_if_heartbeat is not None:
        running = running.filter(heartbeat_at=only_if_heartbeat)
    organisation = drill.environment.project.organisation
    with transaction.atomic():
        changed = running.update(
            status=DrillStatus.PASSED if outcome.passed else DrillStatus.FAILED,
            finished_at=now,
            heartbeat_at=now,
            rto_seconds=outcome.rto_seconds,
            expected_rows=outcome.expected_rows,
            restored_rows=outcome.restored_rows,
            message=outcome.message[:8000],
        )
        if changed != 1:
            return False
        backup = drill.backup
        if not outcome.passed:
            alert_raise(
                organisation=organisation,
                kind=AlertKind.DRILL_FAILED,
                title=f"Restore drill of {_subject(drill)} failed",
                message=outcome.message[-2000:],
                environment=drill.environment,
                backup=backup,
                severity="critical",
                dedup_key=_dedup(AlertKind.DRILL_FAILED, drill),
            )
            return True
        alert_resolve(organisation=organisation, dedup_key=_dedup(AlertKind.DRILL_FAILED, drill))
        objective = drill.rto_objective_seconds
        if objective is not None and outcome.rto_seconds is not None:
            if outcome.rto_seconds > objective:
                alert_raise(
                    organisation=organisation,
                    kind=AlertKind.RTO_EXCEEDED,
                    title=f"Recovery of {_subject(drill)} took longer than its objective",
                    message=(
                        f"The restore drill recovered {_subject(drill)} in "
                        f"{outcome.rto_seconds:.1f} s; the objective is {objective} s."
                    ),
                    environment=drill.environment,
                    backup=backup,
                    dedup_key=_dedup(AlertKind.RTO_EXCEEDED, drill),
                )
                return True
        alert_resolve(organisation=organisation, dedup_key=_dedup(AlertKind.RTO_EXCEEDED, drill))
    return True


# --- the tick: reap, then start what is due ------------------------------------------------


@dataclass
class TickResult:
    started: list[Drill] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    skipped: int = 0  # slots of disabled policies moved forward without a drill
    reaped: list[Drill] = field(default_factory=list)
    requeued: list[Drill] = field(default_factory=list)


def drills_tick(*, now: datetime | None = None, enqueue: bool = True) -> TickResult:
    """Every minute: fail drills whose worker died (dropping their throwaway databases),
    enqueue again those whose task was lost, then request the drills whose slot came due.
    Each policy is on its own: one that cannot be drilled never stops the others."""
    now = now or timezone.now()
    result = TickResult(reaped=drills_reap_stale(now=now))
    if enqueue:
        result.requeued = drills_requeue_lost(now=now)
    for policy in DrillPolicy.objects.select_related("database__environment__project"):
        try:
            _tick_policy(policy, now, enqueue, result)
        except Exception as exc:  # noqa: BLE001 - logged; the other policies still run
            logger.exception("drill policy %s: the tick failed", policy.pk)
            result.refused.append(f"{policy.database}: {exc}")
    return result


def _tick_policy(policy: DrillPolicy, now: datetime, enqueue: bool, result: TickResult) -> None:
    try:
        slot = policy.due_slot(now)
    except (ScheduleError, ValueError) as exc:
        logger.error("drill policy %s: cannot compute its slots: %s", policy.pk, exc)
        result.refused.append(f"{policy.pk}: {exc}")
        return
    if slot is None:
        return
    rows = DrillPolicy.objects.filter(pk=policy.pk)
    newer = Q(last_slot_at__isnull=True) | Q(last_slot_at__lt=slot)
    if not policy.enabled:
        result.skipped += rows.filter(newer).update(last_slot_at=slot)
        return
    with transaction.atomic():
        # The claim and the request commit together; a disable that races wins.
        if rows.filter(newer, enabled=True).update(last_slot_at=slot) != 1:
            return
        try:
            drill = drill_request(
                database=policy.database, trigger=DrillTrigger.SCHEDULED, enqueue=enqueue
            )
        except ApplicationError as exc:
            # The slot stays consumed (as a refused scheduled backup's): say why.
            logger.warning("drill of %s at %s refused: %s", policy.database, slot, exc)
            result.refused.append(f"{policy.database}: {exc.message}")
            return
    result.started.append(drill)


def drills_reap_stale(*, now: datetime | None = None) -> list[Drill]:
    """Fail running drills whose heartbeat went stale; kill their loaders and drop their
    throwaway databases (by the name each recorded before creating it)."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
    stale = (
        Drill.objects.filter(status=DrillStatus.RUNNING)
        .filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit))
        .select_related("environment__project__organisation", "database", "backup")
    )
    reaped = []
    for drill in stale:
        last = drill.heartbeat_at or drill.started_at
        where = f" while {drill.get_phase_display()}" if drill.phase else ""
        message = (
            f"The worker running this drill stopped responding{where} (last heartbeat "
            f"{last:%Y-%m-%d %H:%M:%S} UTC); it probably died. Its throwaway copy "
            f"{drill.throwaway_name or '(not created yet)'} was removed."
        )
        if not _finish(drill, Outcome(message=message), only_if_heartbeat=drill.heartbeat_at):
            continue
        workdirs.discard(workdirs.job_path(tmp_dir(), drill_job(drill)))
        _drop_throwaway(drill)
        reaped.append(drill)
    return reaped


def _drop_throwaway(drill: Drill) -> None:
    database = drill.database
    if not drill.throwaway_name or database is None or database.engine not in SERVER_ENGINES:
        return  # a SQLite or files copy lived in the job's directory, removed above
    policy = DrillPolicy.objects.filter(database=database).first()
    spec = replace(drill_server(database, policy), name=drill.throwaway_name)
    try:
        _refuse_registered(spec)
        loading.discard(spec)
    except (ApplicationError, EngineError, OSError):
        logger.exception("could not drop the throwaway database %s", spec.name)
