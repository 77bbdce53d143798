"""Running one backup, of any kind: its source streamed through the pipeline into every
destination.

One core for every kind. A ``SourcePlan`` says what differs: how the source is opened (a
logical engine dump, a files tar, a ``full`` container of several, a ``pg_basebackup``
stream: ``pitr.base``) and what a completed backup records besides its size and
checksum (a base backup's WAL position). Everything else is shared: the claim, the
heartbeat, aborts, one copy per destination, the checksum, and one final status write,
conditional on the backup still running (the reaper may have failed it meanwhile), with
its alert or its records in the same transaction.

Two threads share the work. The *streaming thread* talks only to the database servers and
the destinations (engine, pipeline, sinks); the *task thread* owns every write to the app
database: it persists progress and a heartbeat twice a second, on a timer whether or not
data flows, and turns an ``aborting`` row into a cancel. So a dump that blocks (waiting on
a table lock, a slow server, WAL archiving) keeps its heartbeat, can still be aborted, and
is never mistaken for a dead worker.

A backup that ends failed or aborted leaves no copy uploading: each is marked failed, and
its partial upload is removed (by the sink's abort, or here when the run stopped on an
unexpected error or found the backup ended by someone else).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.anomaly import backup_anomalies_check
from backups.container import container_source
from backups.engines import ConnectionSpec, EngineError, EngineUnavailable, get_engine
from backups.keys import artifact_encryption
from backups.models import (
    Backup,
    BackupCopy,
    BackupKind,
    BackupStatus,
    BackupTrigger,
    CopyStatus,
    Encryption,
    Phase,
)
from backups.pipeline import (
    PipelineCancelled,
    PipelineError,
    PipelineOptions,
    PipelineResult,
    run_pipeline,
)
from destinations.backends import DestinationBackends
from destinations.storage import (
    artifact_size,
    delete_artifact,
    discard_partial_artifacts,
    open_sink,
)
from organizations.hostpolicy import HostRules, host_rules, pinned_address
from organizations.models import Database, Environment
from organizations.validators import (
    PathNotAllowed,
    require_backup_paths,
    require_destination_paths,
)

logger = logging.getLogger(__name__)

COMPRESSION_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# How often the task thread writes progress and its heartbeat, and looks for an abort.
PROGRESS_INTERVAL = 0.5
ABORT_CHECK_INTERVAL = 1.0
RUNNING = (BackupStatus.IN_PROGRESS, BackupStatus.ABORTING)


def connection_spec_for(database: Database, *, rules: HostRules | None = None) -> ConnectionSpec:
    """The database's connection, its host checked against the organisation's host policy
    by the engine just before each connection (the policy is read here, on the calling
    thread: the streaming thread makes no queries). A caller mapping several databases of
    one organisation passes its ``rules`` once."""
    if rules is None:
        rules = host_rules(database.environment.project.organisation_id)
    return ConnectionSpec(
        engine=database.engine,
        host=database.host,
        port=database.port,
        user=database.username,
        password=database.password,
        name=database.database_name,
        options=dict(database.options or {}),
        address_check=functools.partial(pinned_address, rules),
    )


def files_spec_for(environment: Environment) -> ConnectionSpec:
    return ConnectionSpec(engine="files", name=environment.files_path)


# --- sources -------------------------------------------------------------------------------


class _FinishingReader:
    """Reads a running dump; at its end waits for the tool so a failed exit fails the read."""

    def __init__(self, dump, on_end: Callable[[], None]):
        self._dump = dump
        self._on_end = on_end
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._dump.stdout.read(size)
        if not data:
            self._end()
        return data

    def readinto(self, buffer) -> int:
        n = self._dump.stdout.readinto(buffer)
        if not n:
            self._end()
        return n

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._dump.finish()
            self._on_end()

    def fileno(self) -> int:
        return self._dump.stdout.fileno()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._dump.stdout.close()


@dataclass
class RunningSource:
    """The open source of a run: one dump, one tar, a container of several (``full``) or a
    ``pg_basebackup`` stream. Filled in on the streaming thread; killed from either thread."""

    estimate: int = 0
    engine_version: str = ""
    dumps: list = field(default_factory=list)
    prefixes: list = field(default_factory=list)
    dump_ended_at: float | None = None
    stream: BinaryIO | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    killed: bool = False

    def start(self, opener: Callable[[], Any], prefix: str = ""):
        """Start one tool (anything with ``kill()``) so that a cancel reaches it, even one
        that came while it was starting."""
        with self.lock:
            if self.killed:
                raise PipelineCancelled("backup cancelled")
            dump = opener()
            self.dumps.append(dump)
            self.prefixes.append(prefix)
        return dump

    def open_dump(self, engine, spec, prefix: str = "") -> _FinishingReader:
        dump = self.start(lambda: engine.open_dump(spec), prefix)
        return _FinishingReader(dump, self.mark_ended)

    @property
    def row_counts(self) -> dict:
        """Rows per table (files, directories, links for a tar), read from each dump now:
        a database dump knows them when it starts, a tar only once it has streamed."""
        counts = {}
        for prefix, dump in zip(self.prefixes, self.dumps, strict=True):
            for table, count in (getattr(dump, "row_counts", None) or {}).items():
                counts[f"{prefix}{table}"] = count
        return counts

    @property
    def table_checksums(self) -> dict:
        """Per table rows and SHA-256 of its COPY text, read from a PostgreSQL dump stream
        (``backups.pgdump_stream``); empty for the other engines."""
        checksums = {}
        for prefix, dump in zip(self.prefixes, self.dumps, strict=True):
            for table, entry in (getattr(dump, "table_checksums", None) or {}).items():
                checksums[f"{prefix}{table}"] = entry
        return checksums

    def mark_ended(self) -> None:
        self.dump_ended_at = time.monotonic()

    def kill(self) -> None:
        with self.lock:
            self.killed = True
            dumps = list(self.dumps)
        for dump in dumps:
            try:
                dump.kill()
            except Exception:
                logger.exception("could not kill a dump")


class SourcePlan:
    """What a backup reads and what it records, decided on the task thread before the run
    (the streaming thread makes no app-database queries). The kinds differ only here; the
    run itself (claim, heartbeat, abort, copies, checksum, final status) is one for all.
    """

    kind: str = ""
    extension: str = ""
    # How alerts and messages name a backup of this kind.
    noun: str = "Backup"

    def open(self, source: RunningSource) -> None:
        """Start the tool(s) and set ``source.stream`` (runs on the streaming thread)."""
        raise NotImplementedError

    def record(self, backup: Backup, source: RunningSource) -> None:
        """What a completed backup records besides size and checksum. Runs in the
        transaction of the final status write: both commit, or neither does."""

    def after_completed(self, backup: Backup, source: RunningSource) -> None:
        """Follow-up work once the completed status committed; its failure is only logged."""


class DumpPlan(SourcePlan):
    """Logical dumps, a files tar, or a ``full`` container of several:
    ``(member name or "", engine name, spec, row-count prefix)`` per part."""

    def __init__(self, kind: str, parts: list[tuple[str, str, ConnectionSpec, str]]):
        self.kind = kind
        self.parts = parts
        if kind == BackupKind.FULL:
            self.extension = "sbxc"
        else:
            self.extension = get_engine(parts[0][1]).extension

    def open(self, source: RunningSource) -> None:
        versions = []
        engines = []
        for member, engine_name, spec, prefix in self.parts:
            engine = get_engine(engine_name)
            engine.require_tools()
            engines.append((member, engine, spec, prefix))
            source.estimate += engine.estimate_size(spec) or 0
            if engine_name != "files":
                version = engine.server_version(spec)
                versions.append(f"{prefix.rstrip('/')}:{version}" if prefix else version)
        source.engine_version = ", ".join(versions)
        if self.kind != BackupKind.FULL:
            _, engine, spec, _ = engines[0]
            source.stream = source.open_dump(engine, spec)
            return
        source.stream = container_source(
            [
                (member, lambda e=engine, s=spec, p=prefix: source.open_dump(e, s, p))
                for member, engine, spec, prefix in engines
            ]
        )


# Kinds whose plan another app provides, registered from its AppConfig.ready(): base
# backups (pg_basebackup and the WAL position it records) live with point-in-time recovery,
# which builds on this module, so this module cannot import it.
_PLANS_FROM_APPS: dict[str, Callable[[Backup], SourcePlan]] = {}


def register_source_plan(kind: str, plan_for: Callable[[Backup], SourcePlan]) -> None:
    _PLANS_FROM_APPS[kind] = plan_for


def source_plan_for(backup: Backup) -> SourcePlan:
    if plan_for := _PLANS_FROM_APPS.get(backup.kind):
        return plan_for(backup)
    if backup.kind == BackupKind.DATABASE:
        if backup.database is None:
            raise EngineError("The database of this backup no longer exists.")
        db = backup.database
        return DumpPlan(backup.kind, [("", db.engine, connection_spec_for(db), "")])
    if backup.kind == BackupKind.FILESYSTEM:
        return DumpPlan(backup.kind, [("", "files", files_spec_for(backup.environment), "")])
    parts = []
    for db in backup.environment.databases.order_by("slug"):
        extension = get_engine(db.engine).extension
        parts.append(
            (f"database/{db.slug}.{extension}", db.engine, connection_spec_for(db), f"{db.slug}/")
        )
    if backup.environment.files_path:
        parts.append(("files.tar", "files", files_spec_for(backup.environment), ""))
    return DumpPlan(backup.kind, parts)


def require_run_paths(backup: Backup) -> None:
    """PathNotAllowed unless the organisation may still use every server path this backup
    reads or writes: checked again as it starts, since a symlink may have been swapped in
    (or a grant revoked) since the rows were saved. Nothing has been touched yet then."""
    if backup.kind in (BackupKind.DATABASE, BackupKind.BASE):
        if backup.database is not None:
            require_backup_paths(backup.database)
    else:
        require_backup_paths(
            backup.environment, with_databases=backup.kind != BackupKind.FILESYSTEM
        )
    for destination in backup.destinations.all():
        require_destination_paths(destination)


def _reason(exc: Exception) -> str:
    if isinstance(exc, PathNotAllowed):  # which field, as the API names it at save time
        return f"{', '.join(exc.fields)}: {exc.message}"
    return str(exc)


def artifact_key(backup: Backup, source_extension: str, options: PipelineOptions) -> str:
    environment = backup.environment
    project = environment.project
    extension = f".{source_extension}" + COMPRESSION_EXTENSIONS[options.compression]
    if options.encryption_key:
        extension += ".enc"
    elif options.age_recipients:
        extension += ".age"
    return (
        f"{project.organisation.slug}/{project.slug}/{environment.slug}/{backup.kind}/"
        f"{backup.name}{extension}"
    )


def pipeline_options_for(backup: Backup) -> PipelineOptions:
    encryption = artifact_encryption(backup.organisation)
    return PipelineOptions(
        compression=settings.STRONGBOX_COMPRESSION,
        level=settings.STRONGBOX_COMPRESSION_LEVEL,
        encryption_key=encryption.key,
        key_id=encryption.key_id,
        age_recipients=encryption.recipients,
    )


def encryption_of(options: PipelineOptions) -> str:
    if options.encryption_key:
        return Encryption.AES_256_GCM
    return Encryption.AGE if options.age_recipients else Encryption.NONE


# --- bookkeeping ---------------------------------------------------------------------------


class Phases:
    """Phase timings as seed 004's ``steps.details`` shows them (restores keep theirs the
    same way, with extra facts such as the base backup a recovery started from)."""

    def __init__(self):
        self.items: list[dict] = []

    def start(self, name: str) -> dict:
        item = {"name": name, "status": "RUNNING", "started_at": timezone.now().isoformat()}
        self.items.append(item)
        return item

    @staticmethod
    def finish(item: dict, status: str = "SUCCESS", ended: datetime | None = None, **extra) -> None:
        ended = ended or timezone.now()
        item["status"] = status
        item["finished_at"] = ended.isoformat()
        started = datetime.fromisoformat(item["started_at"])
        item["duration_sec"] = round(max(0.0, (ended - started).total_seconds()), 3)
        item.update(extra)

    def fail_running(self) -> None:
        for item in self.items:
            if item["status"] == "RUNNING":
                self.finish(item, "ERROR")


def update_backup(backup: Backup, **fields) -> None:
    """Write fields with a queryset update (no save(): other processes write the row too)."""
    for name, value in fields.items():
        setattr(backup, name, value)
    fields["updated_at"] = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(**fields)


def _finish_backup(backup: Backup, **fields) -> bool:
    """Move a running backup to its end state, unless the reaper already gave up on it."""
    fields["updated_at"] = timezone.now()
    fields.setdefault("completed_at", timezone.now())
    done = Backup.objects.filter(pk=backup.pk, status__in=RUNNING).update(**fields)
    for name, value in fields.items():
        setattr(backup, name, value)
    if not done:
        logger.warning("backup %s was no longer running when it ended; left as is", backup.id)
    return bool(done)


def mark_copy(copy: BackupCopy, status: str, **fields) -> None:
    fields["status"] = status
    if status == CopyStatus.FAILED:
        fields["file_exists"] = False
    for name, value in fields.items():
        setattr(copy, name, value)
    BackupCopy.objects.filter(pk=copy.pk).update(**fields)


def _discard_copy(copy: BackupCopy, backends: DestinationBackends) -> None:
    """Remove whatever this copy's upload left: the artifact under its key (a copy's key
    belongs to its backup alone) and any unfinished upload of it."""
    try:
        backend = backends[copy.destination]
        discard_partial_artifacts(backend, copy.key)
        delete_artifact(backend, copy.key)
    except Exception:
        # An unreachable store: backups_discard_failed_uploads tries again once it is back.
        logger.exception("could not remove the copy %s", copy.key)


def _copies_message(copies) -> str:
    failed = [c for c in copies if c.status != CopyStatus.STORED]
    good = [c for c in copies if c.status == CopyStatus.STORED]
    message = (
        "Failed destinations: "
        + "; ".join(f"{c.destination.name}: {c.error or 'failed'}" for c in failed)
        + "."
    )
    if good:
        message += " Stored completely in: " + ", ".join(c.destination.name for c in good) + "."
    return message


def _named(error: BaseException, copies: dict) -> str:
    """The error with each sink (named by destination id) shown by its destination's name."""
    text = str(error)
    for name, copy in copies.items():
        text = text.replace(f"{name}: ", f"{copy.destination.name}: ")
    return text


# --- the run -------------------------------------------------------------------------------


@dataclass
class _Run:
    """State shared between the task thread and the streaming thread."""

    plan: SourcePlan
    options: PipelineOptions
    sinks_for: Callable[[], list]
    cancel: threading.Event = field(default_factory=threading.Event)
    source: RunningSource = field(default_factory=RunningSource)
    bytes_in: int = 0
    result: PipelineResult | None = None
    error: BaseException | None = None

    def stream(self) -> None:
        sinks = []
        try:
            self.plan.open(self.source)
            if self.cancel.is_set():
                raise PipelineCancelled("backup cancelled")
            sinks = self.sinks_for()
            if not sinks:
                raise PipelineError("no destination could be opened")
            self.result = run_pipeline(
                self.source.stream,
                sinks,
                self.options,
                progress=self._progress,
                cancel=self.cancel,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the task thread
            self.error = exc
            if not isinstance(exc, PipelineError):
                for sink in sinks:
                    sink.abort()
        finally:
            self.source.kill()

    def _progress(self, progress) -> None:
        self.bytes_in = progress.bytes_in


def backup_claim(*, backup_id) -> Backup | None:
    """Atomically move a backup from scheduled to in-progress; None if someone else did."""
    now = timezone.now()
    claimed = Backup.objects.filter(pk=backup_id, status=BackupStatus.SCHEDULED).update(
        status=BackupStatus.IN_PROGRESS, started_at=now, heartbeat_at=now, updated_at=now
    )
    if claimed != 1:
        return None
    return Backup.objects.select_related("environment__project__organisation", "database").get(
        pk=backup_id
    )


def backup_execute(*, backup: Backup) -> Backup:
    """Run a claimed backup of any kind to its end state. Never leaves it in-progress, nor
    a copy of a failed or aborted backup uploading."""
    execution = _Execution(backup)
    try:
        execution.run()
    except Exception as exc:
        logger.exception("backup %s failed unexpectedly", backup.id)
        if isinstance(exc, DatabaseError):
            connection.close()  # a cut connection: record the failure on a new one
        execution.phases.fail_running()
        # Whatever the copies hold was never recorded on the backup: none of it is kept.
        execution.end(BackupStatus.FAILED, f"Unexpected error: {exc}", discard=True)
    backup.refresh_from_db()
    return backup


class _Execution:
    """One run of one backup, of whichever kind its SourcePlan describes."""

    def __init__(self, backup: Backup):
        self.backup = backup
        self.phases = Phases()
        self.plan: SourcePlan | None = None
        self.source: RunningSource | None = None
        self.stream_phases: tuple[dict, dict] | None = None  # COMPRESS and UPLOAD, while running
        self.copies: dict[str, BackupCopy] = {}
        # Per copy: the date its artifact is locked until (S3 Object Lock), None: unlocked.
        self.locks: dict[str, datetime | None] = {}
        self.backends = DestinationBackends()  # one per destination for the whole run

    def end(
        self, status: str, message: str, *, copy_error: str = "", discard: bool = False, **fields
    ) -> bool:
        """The one final status write of a run, for every kind and outcome.

        Conditional on the backup still running: the reaper may have failed it meanwhile
        (no heartbeat), and then nothing this run stored is kept. A failure's alert, and
        a completed backup's own records (``SourcePlan.record``), commit with the status.
        Copies still uploading are failed (with ``copy_error`` unless they know better);
        with ``discard``, every copy not already failed is, and what it holds removed.
        """
        backup = self.backup
        noun = self.plan.noun if self.plan else "Backup"
        error = copy_error or "the backup did not complete"
        with transaction.atomic():
            ended = _finish_backup(
                backup, status=status, message=message[-8000:], phases=self.phases.items, **fields
            )
            if ended and not discard:
                # With the status: whoever sees the backup ended sees no copy still uploading
                # (the pipeline aborted those sinks, which removed their partial uploads).
                for copy in self.copies.values():
                    if copy.status == CopyStatus.UPLOADING:
                        mark_copy(copy, CopyStatus.FAILED, error=copy.error or error)
            if ended and status == BackupStatus.FAILED:
                # Whoever sees "failed" sees why.
                alert_raise(
                    organisation=backup.organisation,
                    kind=AlertKind.BACKUP_FAILED,
                    title=f"{noun} {backup.name} failed",
                    message=message[-2000:],
                    environment=backup.environment,
                    backup=backup,
                    severity="critical",
                )
            if ended and status == BackupStatus.COMPLETED:
                self.plan.record(backup, self.source)
        if not ended:
            # Ended elsewhere (reaped). It never becomes completed later: drop what we stored.
            discard = not Backup.objects.filter(
                pk=backup.pk, status=BackupStatus.COMPLETED
            ).exists()
        for copy in self.copies.values():
            if copy.status == CopyStatus.FAILED:
                continue
            if discard:
                _discard_copy(copy, self.backends)
                mark_copy(copy, CopyStatus.FAILED, error=copy.error or error)
            elif copy.status == CopyStatus.UPLOADING:
                # Its sink was aborted by the pipeline, which removed the partial upload.
                mark_copy(copy, CopyStatus.FAILED, error=copy.error or error)
        return ended

    def run(self) -> None:
        backup, phases = self.backup, self.phases
        dump_phase = phases.start(Phase.DUMP)
        try:
            self.plan = plan = source_plan_for(backup)
            require_run_paths(backup)
        except (EngineError, PathNotAllowed) as exc:
            phases.finish(dump_phase, "ERROR")
            self.end(BackupStatus.FAILED, f"The dump could not start: {_reason(exc)}")
            return
        run = self._stream(plan)
        if run.error is not None:
            phases.fail_running()
            self._end_unfinished(run.error)
            return
        self._close_stream_phases(dump_phase, run.result)
        verify_phase = self._verify_copies(run.result)
        self._end_verified(run.result, verify_phase)

    def _stream(self, plan: SourcePlan) -> _Run:
        """A copy row per destination, then the source streamed into all of them."""
        backup, phases = self.backup, self.phases
        options = pipeline_options_for(backup)
        key = artifact_key(backup, plan.extension, options)
        for destination in backup.destinations.all():
            copy, _ = BackupCopy.objects.update_or_create(
                backup=backup,
                destination=destination,
                defaults={"key": key, "status": CopyStatus.UPLOADING, "error": ""},
            )
            self.copies[str(destination.id)] = copy
        # Decided here, on the task thread: the streaming thread that opens the sinks
        # makes no queries.
        planned, now = planned_expiry(backup), timezone.now()
        for name, copy in self.copies.items():
            try:
                backend = self.backends[copy.destination]
            except Exception:  # noqa: BLE001 - _open_sinks fails this copy with the reason
                self.locks[name] = None
                continue
            self.locks[name] = backend.lock_until(planned=planned, now=now)
        self.stream_phases = (phases.start(Phase.COMPRESS), phases.start(Phase.UPLOAD))
        update_backup(
            backup,
            phase=Phase.DUMP,
            phases=phases.items,
            compression=options.compression,
            encrypted=bool(options.encryption_key or options.age_recipients),
            encryption=encryption_of(options),
            key_id=options.key_id,
        )
        run = _Run(plan=plan, options=options, sinks_for=lambda: self._open_sinks(key))
        self.source = run.source
        _follow(backup, run)
        return run

    def _open_sinks(self, key: str) -> list:
        sinks = []
        for name, copy in self.copies.items():
            try:
                backend = self.backends[copy.destination]
                sinks.append(open_sink(backend, key, name=name, locked_until=self.locks[name]))
            except Exception as exc:  # noqa: BLE001 - a destination we cannot even open
                copy.error = f"could not start the upload: {exc}"
        return sinks

    def _end_unfinished(self, error: BaseException) -> None:
        """The stream stopped before its end: aborted, unsupported or failed."""
        source = self.source
        info = {"engine_version": source.engine_version, "row_counts": source.row_counts}
        if isinstance(error, PipelineCancelled):
            self.end(
                BackupStatus.ABORTED,
                "Aborted on request; partial artifacts were removed.",
                copy_error="aborted",
                **info,
            )
        elif isinstance(error, EngineUnavailable):
            self.end(BackupStatus.NOT_SUPPORTED, str(error), copy_error="not supported")
        else:
            self.end(
                BackupStatus.FAILED,
                f"The backup failed: {_named(error, self.copies)}",
                copy_error=str(error),
                **info,
            )

    def _close_stream_phases(self, dump_phase: dict, result: PipelineResult) -> None:
        # The dump ended when the tool did, a little before the upload's last bytes.
        ended = timezone.now()
        dump_end = ended
        if self.source.dump_ended_at is not None:
            behind = max(0.0, time.monotonic() - self.source.dump_ended_at)
            dump_end = ended - timedelta(seconds=behind)
        compress_phase, upload_phase = self.stream_phases
        self.phases.finish(dump_phase, ended=dump_end)
        self.phases.finish(compress_phase, ended=ended)
        self.phases.finish(upload_phase, "ERROR" if result.failed else "SUCCESS", ended=ended)

    def _verify_copies(self, result: PipelineResult) -> dict:
        """Each committed copy checked where it is stored; returns the running VERIFY phase."""
        verify_phase = self.phases.start(Phase.VERIFY)
        update_backup(
            self.backup,
            phase=Phase.VERIFY,
            phases=self.phases.items,
            bytes_done=result.bytes_in,
            bytes_total=self.source.estimate or None,
        )
        copies = self.copies
        for name, error in result.failed.items():
            mark_copy(copies[name], CopyStatus.FAILED, error=error)
        for name in result.committed:
            _verify_fresh_copy(
                copies[name],
                self.backends,
                result.bytes_out,
                result.sha256,
                locked_until=self.locks.get(name),
            )
        for copy in copies.values():
            if copy.status == CopyStatus.UPLOADING:
                mark_copy(copy, CopyStatus.FAILED, error=copy.error or "the upload did not start")
        return verify_phase

    def _end_verified(self, result: PipelineResult, verify_phase: dict) -> None:
        backup, source, copies = self.backup, self.source, self.copies
        if Backup.objects.filter(pk=backup.pk, status=BackupStatus.ABORTING).exists():
            # The abort came after the last chunk: honour it rather than keep what was asked away.
            self.phases.finish(verify_phase, "ERROR")
            self.end(
                BackupStatus.ABORTED,
                "Aborted on request; the artifacts were removed.",
                copy_error="aborted",
                discard=True,
            )
            return
        failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
        self.phases.finish(verify_phase, "ERROR" if failed else "SUCCESS")
        common = {
            "size": result.bytes_out,
            "checksum_sha256": result.sha256,
            "row_counts": source.row_counts,
            "table_checksums": source.table_checksums,
            "engine_version": source.engine_version,
            "bytes_done": result.bytes_in,
        }
        if failed:
            self.end(BackupStatus.FAILED, _copies_message(copies.values()), **common)
            return
        if not self.end(BackupStatus.COMPLETED, "", phase="", **common):
            return
        if backup.database_id and source.engine_version:
            Database.objects.filter(pk=backup.database_id).update(version=source.engine_version)
        try:
            self.plan.after_completed(backup, source)
        except Exception:
            logger.exception("follow-up of the completed backup %s failed", backup.id)
        try:
            # Completed it stays; what its history finds unusual is recorded and alerted.
            backup_anomalies_check(backup=backup)
        except Exception:
            logger.exception("the anomaly check of backup %s failed", backup.id)
        alert_resolve(organisation=backup.organisation, kind=AlertKind.BACKUP_FAILED, backup=backup)


def _follow(backup: Backup, run: _Run) -> None:
    """Run the streaming thread; meanwhile persist progress and heartbeat, honour aborts.

    The heartbeat is written on this timer whether or not data flows: a tool that is silent
    for a while (a dump waiting on a lock, pg_basebackup waiting for WAL to be archived) is
    alive, and must not be reaped as dead.
    """
    # The streaming thread logs with the task's context (the backup id on every line).
    thread = threading.Thread(
        target=contextvars.copy_context().run,
        args=(run.stream,),
        name=f"backup-{backup.id}",
        daemon=True,
    )
    thread.start()
    last_check = 0.0
    estimate_written = False
    try:
        while thread.is_alive():
            thread.join(PROGRESS_INTERVAL)
            try:
                estimate_written = _beat(backup, run, estimate_written)
                now = time.monotonic()
                if now - last_check >= ABORT_CHECK_INTERVAL:
                    last_check = now
                    _cancel_unless_running(backup, run)
            except DatabaseError:
                # The app database connection was cut (a restart, a failover), whichever query
                # it hit: drop it so the next tick reconnects. If the heartbeat stays away past
                # the reaper's timeout, the backup is reaped and the status check cancels the work.
                logger.warning("lost the app database connection; reconnecting", exc_info=True)
                connection.close()
    finally:
        if thread.is_alive():
            # Leaving on an error: the upload must not complete behind a row nobody ends.
            run.cancel.set()
            run.source.kill()
            thread.join(timeout=60)


def _beat(backup: Backup, run: _Run, estimate_written: bool) -> bool:
    """Write progress and the heartbeat; returns whether the size estimate is written."""
    fields = {"bytes_done": run.bytes_in, "heartbeat_at": timezone.now()}
    if not estimate_written and run.source.estimate:
        fields["bytes_total"] = run.source.estimate
        fields["engine_version"] = run.source.engine_version
    Backup.objects.filter(pk=backup.pk, status__in=RUNNING).update(**fields)
    return estimate_written or "bytes_total" in fields


def _cancel_unless_running(backup: Backup, run: _Run) -> None:
    status = Backup.objects.filter(pk=backup.pk).values_list("status", flat=True).first()
    if status != BackupStatus.IN_PROGRESS and not run.cancel.is_set():
        # Aborting on request, or reaped/changed meanwhile: stop the work.
        run.cancel.set()
        run.source.kill()


def planned_expiry(backup: Backup) -> datetime | None:
    """When retention will let ``backup`` go, as far as is known before it is stored: a
    manual backup's own expiry; for a scheduled one, the expiry its schedule's policy gives
    the newest backup of its series. Retention (``schedules.locks``) extends the lock
    later when a plan keeps the backup longer."""
    if backup.trigger != BackupTrigger.SCHEDULED:
        return backup.expires_at
    if backup.schedule is None:
        return None
    return backup.schedule.retention_policy().newest_expiry(backup.kind, backup.created_at)


def _verify_fresh_copy(
    copy: BackupCopy,
    backends: DestinationBackends,
    expected_size: int,
    checksum: str,
    *,
    locked_until: datetime | None = None,
) -> None:
    try:
        stored = artifact_size(backends[copy.destination], copy.key)
    except Exception as exc:  # noqa: BLE001 - any storage error makes this copy bad
        mark_copy(copy, CopyStatus.FAILED, error=f"could not check the stored copy: {exc}")
        return
    if stored != expected_size:
        _discard_copy(copy, backends)
        mark_copy(
            copy,
            CopyStatus.FAILED,
            error=f"stored size {stored} does not match the {expected_size} bytes written",
        )
        return
    mark_copy(
        copy,
        CopyStatus.STORED,
        size=expected_size,
        checksum_sha256=checksum,
        file_exists=True,
        last_verified_at=timezone.now(),
        locked_until=locked_until,
    )
    try:
        backends[copy.destination].seal(copy.key, locked_until=locked_until)
    except Exception:
        # The copy is stored and verified (and a lock set when the upload began); what
        # could not be added is in the log.
        logger.exception("could not seal the copy %s", copy.key)
