"""WAL archive and fetch: what archive_command and restore_command run."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.engines import EngineUnavailable
from backups.keys import key_for_id, organisation_key
from backups.models import (
    BackupStatus,
    BaseBackupPosition,
    WalArchiver,
    WalKind,
    WalSegment,
)
from backups.pipeline import (
    PipelineError,
    PipelineOptions,
    compress_whole,
    open_artifact,
    run_pipeline,
)
from backups.services import _destinations_for
from config.errors import ApplicationError, Conflict, InvalidInput
from destinations.backends import DestinationBackend, DestinationBackends
from destinations.models import Destination
from destinations.storage import ArtifactMissing, artifact_size, open_artifact_stream, open_sink
from organizations.models import Database
from organizations.validators import require_destination_paths
from pitr import physical, wal_spool
from pitr.wal_header import BadSegmentHeader, check_segment, read_segment_header

logger = logging.getLogger(__name__)

WAL_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


class WalArchiveFailed(ApplicationError):
    status_code = 500
    code = "wal_archive_failed"


class WalConflict(Conflict):
    """A different file of the same name is already archived."""


class WalFetchFailed(ApplicationError):
    status_code = 500
    code = "wal_fetch_failed"


def configured_pg_bin() -> str:
    return settings.STRONGBOX_PG_BIN_DIR


# --- where WAL goes ---------------------------------------------------------------------------


def wal_destinations(*, database: Database) -> list[Destination]:
    """The schedule's destinations of the database's environment, else the default one."""
    environment = database.environment
    schedule = getattr(environment, "schedule", None)
    return _destinations_for(environment, None, schedule)


def wal_options(*, database: Database) -> PipelineOptions:
    key = organisation_key(database.environment.project.organisation)
    # One thread: a segment is 16 MiB, zstd's worker threads cost more than they save.
    return PipelineOptions(
        compression="zstd",
        level=settings.STRONGBOX_COMPRESSION_LEVEL,
        threads=0,
        encryption_key=key[1] if key else None,
        key_id=key[0] if key else "",
    )


def wal_key(*, database: Database, name: str, options: PipelineOptions) -> str:
    environment = database.environment
    project = environment.project
    extension = WAL_EXTENSIONS[options.compression] + (".enc" if options.encryption_key else "")
    return (
        f"{project.organisation.slug}/{project.slug}/{environment.slug}/wal/"
        f"{database.slug}/{name}{extension}"
    )


def require_postgresql(database: Database) -> None:
    if database.engine != "postgresql":
        raise InvalidInput(
            f"{database} is a {database.engine} database; point-in-time recovery is for "
            "PostgreSQL only.",
            fields={"database": ["Not a PostgreSQL database."]},
        )


# --- archive ----------------------------------------------------------------------------------


@dataclass
class WalArchiveResult:
    segment: WalSegment
    already_archived: bool
    destinations: list[str] = field(default_factory=list)


class _PlainDigest:
    """The SHA-256 and size of the file as stored: taken while the pipeline reads it (one
    pass over 16 MiB instead of two), or by reading it when nothing was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hex: str | None = None
        self.size = 0

    def hexdigest(self) -> str:
        if self._hex is None:
            self._hex, self.size = _file_digest(self.path)
        return self._hex

    @contextlib.contextmanager
    def reading(self):
        """The file, hashed as it is read; the digest counts once it was read to the end."""
        digest = hashlib.sha256()
        size = 0
        with open(self.path, "rb") as handle:

            class Reader:
                def read(self, n: int = -1) -> bytes:
                    nonlocal size
                    data = handle.read(n)
                    digest.update(data)
                    size += len(data)
                    return data

            yield Reader()
            if not handle.read(1):  # at its end: what was hashed is the whole file
                self._hex, self.size = digest.hexdigest(), size


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _checked_name(path: Path, name: str, size: int) -> physical.WalName:
    """What the name says, with the segment size of the file's own header (a non-default
    wal_segment_size changes the name's arithmetic), refusing a segment whose header is
    another segment's (a recycled file). A file without a WAL page header at all (not
    written by PostgreSQL: a copy, a test's file) keeps the old rule: its size decides."""
    try:
        wal = physical.parse_wal_name(name)
    except ValueError as exc:
        raise WalArchiveFailed(str(exc)) from exc
    if wal.kind not in ("segment", "partial"):
        return wal
    try:
        header = read_segment_header(path)
    except BadSegmentHeader:
        is_size = (1 << 20) <= size <= (1 << 30) and size & (size - 1) == 0
        return physical.parse_wal_name(name, segment_size=size) if is_size else wal
    if header.segment_size != physical.DEFAULT_SEGMENT_SIZE:
        wal = physical.parse_wal_name(name, segment_size=header.segment_size)
    if wal.kind == "segment" and size != header.segment_size:
        raise WalArchiveFailed(f"{name} has {size} bytes; its header says {header.segment_size}")
    try:
        check_segment(header, timeline=wal.timeline, number=wal.number)
    except BadSegmentHeader as exc:
        raise WalArchiveFailed(f"{name} is not the segment its name says: {exc}") from exc
    return wal


def _stored_plaintext_digest(backend: DestinationBackend, key: str) -> str:
    with open_artifact_stream(backend, key) as raw:
        plain = open_artifact(raw, key_for=key_for_id)
        digest = hashlib.sha256()
        while chunk := plain.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def wal_archive(
    *,
    database: Database,
    path: str | Path,
    name: str,
    check_gap: bool = True,
    stored: Callable[[str], None] | None = None,
) -> WalArchiveResult:
    """Store one WAL file in every destination; raise unless it is durably everywhere.

    Failures are recorded on the database's WalArchiver row and raise (de-duplicated) a
    ``wal_archiving_failed`` alert before the exception reaches the caller. ``check_gap``
    off: the caller archives several files at once, out of order, and asks
    ``wal_gap_check`` itself once the older ones are in. ``stored(name)`` is called once
    the file is in every destination, before it is recorded (where a crash hurts most).
    """
    try:
        return _archive(database, Path(path), name, check_gap, stored)
    except ApplicationError as exc:  # WalConflict, WalArchiveFailed, InvalidInput
        _archive_failed(database, name, exc.message)
        raise
    except Exception as exc:
        logger.exception("archiving %s of %s failed", name, database.pk)
        message = f"{type(exc).__name__}: {exc}"
        _archive_failed(database, name, message)
        raise WalArchiveFailed(message) from exc


def _archive(
    database: Database, path: Path, name: str, check_gap: bool, stored
) -> WalArchiveResult:
    require_postgresql(database)
    try:
        physical.parse_wal_name(name)
    except ValueError as exc:
        raise WalArchiveFailed(str(exc)) from exc
    plain = _PlainDigest(path)
    wal = _checked_name(path, name, path.stat().st_size)
    existing = WalSegment.objects.filter(database=database, name=name).first()
    if existing is not None:
        checksum = plain.hexdigest()
        if existing.checksum_sha256 != checksum:
            raise WalConflict(
                f"{name} is already archived for {database} with different content "
                f"(sha256 {existing.checksum_sha256[:12]}…, this one {checksum[:12]}…); "
                "refusing to overwrite it. Is another cluster archiving into this database?"
            )
        _archive_succeeded(database, name)
        return WalArchiveResult(segment=existing, already_archived=True)

    options = wal_options(database=database)
    key = wal_key(database=database, name=name, options=options)
    destinations = wal_destinations(database=database)
    artifact_sha256, stored_size, (first_xact, last_xact) = _store_everywhere(
        database, path, wal, destinations, key, plain, options
    )
    checksum, size = plain.hexdigest(), plain.size
    if stored is not None:
        stored(name)
    environment = database.environment
    try:
        with transaction.atomic():
            segment = WalSegment.objects.create(
                organisation_id=environment.project.organisation_id,
                environment=environment,
                database=database,
                base_backup_id=_base_for(database, wal),
                name=name,
                kind=wal.kind,
                timeline=wal.timeline,
                segment_number=wal.number,
                size=size,
                stored_size=stored_size,
                checksum_sha256=checksum,
                artifact_sha256=artifact_sha256,
                key=key,
                compression=options.compression,
                encrypted=bool(options.encryption_key),
                key_id=options.key_id,
                first_xact_at=first_xact,
                last_xact_at=last_xact,
            )
            segment.destinations.set(destinations)
    except IntegrityError:
        # Archived concurrently by another run (PostgreSQL retried while we were slow).
        segment = WalSegment.objects.get(database=database, name=name)
        if segment.checksum_sha256 != checksum:
            raise WalConflict(f"{name} was archived concurrently with different content") from None
    if wal.kind == "backup":
        record_backup_stop(database, path)
    if wal.kind == "segment" and check_gap:
        wal_gap_check(database=database, segment=segment)
    _archive_succeeded(database, name)
    return WalArchiveResult(
        segment=segment,
        already_archived=False,
        destinations=[d.name for d in destinations],  # each held it or was written
    )


def _store_everywhere(database, path: Path, wal, destinations, key, plain, options):
    """Store the file in every destination that lacks it; raise unless all hold it. Returns
    the artifact's sha256 and size and the segment's first and last transaction times."""
    name = wal.name
    backends = DestinationBackends()  # one per destination for this file's checks and writes
    problems: list[str] = []
    # The transaction times (the coverage window's end) need the records, not the header:
    # pg_waldump reads them while the pipeline compresses and uploads.
    xact_times = (
        physical.XactTimes(str(path), pg_bin=_waldump_dir(database))
        if wal.kind == "segment"
        else None
    )
    try:
        present, missing = _survey(destinations, backends, key, plain, name, problems)
        artifact_sha256, stored_size = _store(plain, missing, backends, key, options, problems)
        if problems:
            raise WalArchiveFailed(
                f"{name} is not stored in every destination: " + "; ".join(problems)
            )
    except BaseException:
        if xact_times is not None:
            xact_times.cancel()
        raise
    if not missing:
        stored_size = artifact_size(backends[destinations[0]], key) or 0
    times = xact_times.result() if xact_times is not None else (None, None)
    return artifact_sha256, stored_size, times


def ready_wal_files(pg_wal: Path, *, skip: str = "") -> list[str]:
    """Files PostgreSQL has marked ready to archive (``archive_status/*.ready``), in the
    order its archiver takes them: timeline history files first, then by name."""
    # Two directory listings, no stat per file: the pusher asks after every file it stored.
    with os.scandir(pg_wal) as entries:
        present = {entry.name for entry in entries if entry.is_file()}
    names = []
    with os.scandir(os.path.join(pg_wal, "archive_status")) as statuses:
        for status in statuses:
            name = status.name.removesuffix(".ready")
            if name == status.name or name == skip or name not in present:
                continue
            try:
                physical.parse_wal_name(name)
            except ValueError:
                continue
            names.append(name)
    return sorted(names, key=lambda n: (not n.endswith(".history"), n))


def wal_archive_ahead(*, database: Database, path: str | Path, name: str, limit: int) -> list[str]:
    """After ``name`` is stored, store up to ``limit`` more files PostgreSQL has marked ready
    and leave a marker for each, so its archive_command for them returns at once
    (``pitr.wal_spool``). Stops at the first failure: PostgreSQL asks for that file
    itself next and gets the error then. Returns the names stored ahead."""
    if limit <= 0:
        return []
    root = Path(settings.STRONGBOX_WAL_SPOOL_DIR)
    wal_spool.forget_stale_markers(root, str(database.pk))
    pg_wal = Path(path).parent
    done = []
    for other in ready_wal_files(pg_wal, skip=name)[:limit]:
        try:
            result = wal_archive(database=database, path=pg_wal / other, name=other)
        except ApplicationError:
            break
        wal_spool.mark_archived(root, str(database.pk), other, result.segment.checksum_sha256)
        done.append(other)
    return done


def _survey(destinations, backends: DestinationBackends, key, plain, name, problems: list[str]):
    """Split destinations into those already holding this very file (a previous attempt
    that failed elsewhere) and those still to write; another file there is a conflict.
    A destination that cannot even be asked is a problem; the others still get the file."""
    present, missing = [], []
    for destination in destinations:
        try:
            backend = backends[destination]
            exists = artifact_size(backend, key) is not None
            same = exists and _stored_plaintext_digest(backend, key) == plain.hexdigest()
        except Exception as exc:  # noqa: BLE001 - unreachable destination and the like
            problems.append(f"{destination.name}: {type(exc).__name__}: {exc}")
            continue
        if exists and not same:
            raise WalConflict(
                f"{name} already exists in {destination.name} with different content; "
                "refusing to overwrite it."
            )
        (present if exists else missing).append(destination)
    return present, missing


def _store(
    plain: _PlainDigest, destinations, backends: DestinationBackends, key, options, problems
) -> tuple[str, int]:
    """Write the file to every destination given; the ones that fail are added to
    ``problems`` (their partial upload aborted). Returns the artifact's sha256 and size."""
    sinks = []
    for destination in destinations:
        try:
            require_destination_paths(destination)  # a link swapped in since it was saved
            sinks.append(open_sink(backends[destination], key, name=str(destination.id)))
        except Exception as exc:  # noqa: BLE001 - reported with the others
            problems.append(f"{destination.name}: {type(exc).__name__}: {exc}")
    if not sinks:
        return "", 0
    by_id = {str(d.id): d for d in destinations}
    with plain.reading() as source:
        try:
            piped, piped_options = _pipeline_input(source, plain, options)
            result = run_pipeline(piped, sinks, piped_options)
        except PipelineError as exc:
            problems.append(str(exc))
            return "", 0
    problems.extend(f"{by_id[n].name}: {error}" for n, error in result.failed.items())
    for sink_name in result.committed:
        destination = by_id[sink_name]
        stored = artifact_size(backends[destination], key)
        if stored != result.bytes_out:
            problems.append(f"{destination.name}: stored {stored} bytes of {result.bytes_out}")
    return result.sha256, result.bytes_out


# A segment (16 MiB by default) is read whole and compressed in one call; a file of a
# cluster with much larger segments streams through the pipeline in chunks instead.
COMPRESS_WHOLE_LIMIT = 64 << 20


def _pipeline_input(source, plain: _PlainDigest, options: PipelineOptions):
    """What run_pipeline reads, and how: the file compressed already (one call, same frame
    as streaming would write; the pipeline then only encrypts, hashes and writes it), or
    the file itself."""
    size = plain.path.stat().st_size
    if options.compression != "zstd" or size > COMPRESS_WHOLE_LIMIT:
        return source, options
    data = source.read(size + 1)
    while chunk := source.read(1 << 20):  # grew since the stat: read the rest too
        data += chunk
    return io.BytesIO(compress_whole(data, options)), replace(options, compression="none")


def _waldump_dir(database: Database) -> str:
    """pg_waldump of the server's major version (it reads no other version's WAL)."""
    major = (database.version or "").split(".")[0] or None
    try:
        return physical.pg_bin_dir(major, configured=configured_pg_bin())
    except EngineUnavailable:
        logger.warning("pg_waldump not found: WAL transaction times (coverage) stay unknown")
        return ""


def _base_for(database: Database, wal: physical.WalName) -> uuid.UUID | None:
    """The id of the latest completed base backup this WAL file replays onto, or None."""
    if wal.number is None:
        return None
    return (
        BaseBackupPosition.objects.filter(
            backup__database=database,
            backup__status=BackupStatus.COMPLETED,
            timeline__lte=wal.timeline,
            start_segment_number__lte=wal.number,
        )
        .order_by("-start_segment_number", "-backup__created_at")
        .values_list("backup_id", flat=True)
        .first()
    )


def record_backup_stop(database: Database, path: Path) -> None:
    """A ``*.backup`` history file names its base backup (our label) and where it stopped."""
    fields = physical.parse_backup_label(path.read_text(encoding="utf-8", errors="replace"))
    label = fields.get("LABEL", "")
    try:
        stop_lsn, stop_wal = physical.label_location(fields.get("STOP WAL LOCATION", ""))
    except ValueError:
        return
    stop_time = physical.label_time(fields.get("STOP TIME", ""))
    BaseBackupPosition.objects.filter(backup__database=database, backup__name=label).update(
        stop_lsn=stop_lsn, stop_wal=stop_wal, stop_time=stop_time
    )


def _archiver(database: Database) -> None:
    WalArchiver.objects.get_or_create(database=database)


def _archive_succeeded(database: Database, name: str) -> None:
    now = timezone.now()
    updated = WalArchiver.objects.filter(database=database).update(
        last_archived_wal=name,
        last_archived_at=now,
        consecutive_failures=0,
        archived_count=F("archived_count") + 1,
    )
    if not updated:
        with contextlib.suppress(IntegrityError), transaction.atomic():
            WalArchiver.objects.create(
                database=database, last_archived_wal=name, last_archived_at=now, archived_count=1
            )
    organisation = database.environment.project.organisation
    alert_resolve(organisation=organisation, dedup_key=_failure_key(database))


def _archive_failed(database: Database, name: str, message: str) -> None:
    try:
        now = timezone.now()
        _archiver(database)
        WalArchiver.objects.filter(database=database).update(
            last_failed_wal=name[:64],
            last_failed_at=now,
            last_error=message[-4000:],
            failed_count=F("failed_count") + 1,
            consecutive_failures=F("consecutive_failures") + 1,
        )
        alert_raise(
            organisation=database.environment.project.organisation,
            kind=AlertKind.WAL_ARCHIVING_FAILED,
            title=f"WAL archiving of {database.name} is failing",
            message=f"{name}: {message}"[-2000:],
            environment=database.environment,
            severity="critical",
            dedup_key=_failure_key(database),
        )
    except Exception:  # the archive command must still exit non-zero with its message
        logger.exception("could not record the WAL archiving failure of %s", database.pk)


def _failure_key(database: Database) -> str:
    return f"{AlertKind.WAL_ARCHIVING_FAILED}:database:{database.pk}"


def gap_key(database: Database) -> str:
    return f"{AlertKind.WAL_ARCHIVING_FAILED}:gap:database:{database.pk}"


def wal_gap_check(*, database: Database, segment: WalSegment) -> None:
    """A segment whose predecessor on its timeline is missing, while older ones exist,
    opens a gap: raise the alert now rather than at the next coverage read."""
    if segment.segment_number is None:
        return
    same_timeline = WalSegment.objects.filter(
        database=database, timeline=segment.timeline, kind=WalKind.SEGMENT
    )
    older = same_timeline.filter(segment_number__lt=segment.segment_number)
    if not older.exists():
        return
    if same_timeline.filter(segment_number=segment.segment_number - 1).exists():
        return
    previous = older.order_by("-segment_number").first()
    alert_raise(
        organisation=database.environment.project.organisation,
        kind=AlertKind.WAL_ARCHIVING_FAILED,
        title=f"Gap in the WAL archive of {database.name}",
        message=(
            f"{segment.name} was archived but the segments after {previous.name} before it "
            "are missing: point-in-time recovery cannot cross this gap."
        ),
        environment=database.environment,
        severity="critical",
        dedup_key=gap_key(database),
    )


# --- fetch ------------------------------------------------------------------------------------


def wal_fetch(
    *,
    database: Database,
    name: str,
    target: str | Path,
    backends: DestinationBackends | None = None,
) -> bool:
    """Write the WAL file ``name`` to ``target`` (verified). False when it was never archived.

    Raises WalFetchFailed when it was archived but no destination returns it intact. A
    caller fetching several files passes its ``backends`` to share them.
    """
    backends = DestinationBackends() if backends is None else backends
    try:
        physical.parse_wal_name(name)
    except ValueError as exc:
        raise WalFetchFailed(str(exc)) from exc
    segment = WalSegment.objects.filter(database=database, name=name).first()
    if segment is None:
        return False
    target = Path(target)
    problems = []
    for destination in segment.destinations.order_by("name"):
        try:
            _fetch_from(backends[destination], segment, target)
            return True
        except ArtifactMissing:
            problems.append(f"{destination.name}: missing")
        except Exception as exc:  # noqa: BLE001 - try the next copy
            problems.append(f"{destination.name}: {exc}")
    raise WalFetchFailed(f"{name} could not be read intact: " + "; ".join(problems))


def wal_fetch_ahead(*, database: Database, name: str, directory: Path, limit: int) -> list[str]:
    """After segment ``name``, download the next ``limit`` archived segments of its timeline
    into ``directory``, verified, for restore_command to take without starting Django
    (``pitr.wal_spool.fetched_ahead``). Stops at the first that cannot be read: recovery
    asks for it itself and gets the error then. Returns the names fetched."""
    try:
        wal = physical.parse_wal_name(name)
    except ValueError:
        return []
    if limit <= 0 or wal.kind != "segment":
        return []
    following = WalSegment.objects.filter(
        database=database,
        kind=WalKind.SEGMENT,
        timeline=wal.timeline,
        segment_number__gt=wal.number,
    ).order_by("segment_number")[:limit]
    directory.mkdir(parents=True, exist_ok=True)
    fetched = []
    backends = DestinationBackends()
    for segment in following:
        target = directory / segment.name
        if not target.exists():
            try:
                wal_fetch(database=database, name=segment.name, target=target, backends=backends)
            except WalFetchFailed:
                break
        fetched.append(segment.name)
    return fetched


def _fetch_from(backend: DestinationBackend, segment: WalSegment, target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, open_artifact_stream(backend, segment.key) as raw:
            plain = open_artifact(raw, key_for=key_for_id)
            while chunk := plain.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != segment.checksum_sha256 or size != segment.size:
            raise WalFetchFailed(
                f"checksum or size mismatch ({size} bytes, sha256 {digest.hexdigest()[:12]}…)"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
