"""WAL retention, the base backups it protects, and the gap and lag alerts."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.engines.postgresql import PostgreSQLEngine
from backups.models import Backup, WalArchiver, WalKind, WalSegment
from backups.services import backup_delete, connection_spec_for
from config.errors import ApplicationError
from destinations.backends import DestinationBackends
from destinations.storage import delete_artifact
from organizations.models import Database, Environment
from pitr import physical
from pitr.archive import gap_key
from pitr.coverage import (
    WAL_LAG_SECONDS,
    base_backups,
    database_windows,
    iso,
    pitr_databases,
    wal_gaps,
)

logger = logging.getLogger(__name__)


# --- retention and monitoring -------------------------------------------------------------------


def _retention_cutoff(environment: Environment, now: datetime) -> datetime | None:
    schedule = getattr(environment, "schedule", None)
    if schedule is None or not schedule.wal_retention_days:
        return None
    return now - timedelta(days=schedule.wal_retention_days)


def _protected_bases(database: Database, cutoff: datetime | None) -> list[Backup]:
    """Base backups still needed: the newest always; an older one while some time it alone
    can reach (until the next base becomes usable) is inside retention."""
    bases = base_backups(database)
    if cutoff is None or not bases:
        return bases
    windows = {w.base.pk: w for w in database_windows(database)}
    kept = [bases[-1]]
    for base, successor in zip(bases, bases[1:], strict=False):
        next_window = windows.get(successor.pk)
        own = windows.get(base.pk)
        reach_end = next_window.earliest if next_window else (own.latest if own else None)
        if reach_end is None or reach_end >= cutoff:
            kept.append(base)
    return kept


def pitr_protected_backup_ids(*, environment: Environment, now: datetime | None = None) -> set:
    """Ids of base backups that GFS retention must not delete (their WAL window is still
    inside ``walRetentionDays``)."""
    now = now or timezone.now()
    cutoff = _retention_cutoff(environment, now)
    return {
        base.pk
        for database in pitr_databases(environment)
        for base in _protected_bases(database, cutoff)
    }


def wal_retention_apply(*, environment: Environment, now: datetime | None = None) -> dict:
    """Remove WAL older than ``walRetentionDays`` that no kept base backup needs, and the
    base backups whose window left retention (deleted like any backup: asynchronously,
    from every destination, the row kept for audit)."""
    now = now or timezone.now()
    cutoff = _retention_cutoff(environment, now)
    removed = bytes_removed = 0
    errors = []
    bases_deleted = []
    if cutoff is None:
        return {"removed": 0, "bytes": 0, "errors": [], "baseBackupsDeleted": []}
    for database in pitr_databases(environment):
        kept = _protected_bases(database, cutoff)
        if not kept:
            continue  # no base backup at all: the WAL is all there is, keep it
        for base in base_backups(database):
            if base in kept or (base.completed_at or base.created_at) >= cutoff:
                continue
            try:
                backup_delete(backup=base)
            except ApplicationError as exc:  # being restored, changed meanwhile: next run
                errors.append(f"{base.name}: {exc.message}")
                continue
            bases_deleted.append(str(base.pk))
        oldest_needed = min(b.base_position.start_segment_number for b in kept)
        expired = WalSegment.objects.filter(
            database=database, stored_at__lt=cutoff, segment_number__lt=oldest_needed
        )
        count, size = _delete_segments(expired, errors)
        removed += count
        bytes_removed += size
    return {
        "removed": removed,
        "bytes": bytes_removed,
        "errors": errors,
        "baseBackupsDeleted": bases_deleted,
    }


def pitr_monitor(*, environment: Environment, now: datetime | None = None) -> list[str]:
    """Raise or resolve the gap and lag alerts of the environment's PostgreSQL databases."""
    now = now or timezone.now()
    organisation = environment.project.organisation
    raised = []
    for database in pitr_databases(environment):
        gaps = wal_gaps(database)
        if gaps:
            first = gaps[0]
            alert_raise(
                organisation=organisation,
                kind=AlertKind.WAL_ARCHIVING_FAILED,
                title=f"Gap in the WAL archive of {database.name}",
                message=(
                    f"{len(gaps)} gap(s); first: {first['missingSegments']} segment(s) missing "
                    f"from {first['firstMissingWal']} (after {first['afterWal'] or 'none'})"
                    + (f", {first['problem']}" if first["problem"] else "")
                    + "."
                ),
                environment=environment,
                severity="critical",
                dedup_key=gap_key(database),
            )
            raised.append(f"gap:{database.pk}")
        else:
            alert_resolve(organisation=organisation, dedup_key=gap_key(database))
        behind = _segments_behind(database)
        archiver = WalArchiver.objects.filter(database=database).first()
        since = archiver.last_archived_at if archiver else None
        lagging = (
            behind is not None
            and behind > 1
            and (since is None or (now - since).total_seconds() > WAL_LAG_SECONDS)
        )
        lag_key = f"{AlertKind.WAL_LAG}:database:{database.pk}"
        if lagging:
            alert_raise(
                organisation=organisation,
                kind=AlertKind.WAL_LAG,
                title=f"WAL archiving of {database.name} is behind",
                message=(
                    f"{behind - 1} finished segment(s) not archived yet; last archived "
                    f"{iso(since) or 'never'}."
                ),
                environment=environment,
                dedup_key=lag_key,
            )
            raised.append(f"lag:{database.pk}")
        elif behind is not None:
            alert_resolve(organisation=organisation, dedup_key=lag_key)
    return raised


def _segments_behind(database: Database) -> int | None:
    """How many segments the server's current WAL position is past our last archived one."""
    archiver = WalArchiver.objects.filter(database=database).first()
    try:
        with PostgreSQLEngine().connect(connection_spec_for(database)) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    except Exception:  # noqa: BLE001 - an unreachable server is another alert's business
        logger.info("could not read the WAL position of %s", database.pk)
        return None
    if not row:
        return None
    # The segment the next record goes to (pg_walfile_name would name the previous one
    # right after a switch, when the position sits on a segment boundary).
    current = physical.segment_number_of_lsn(str(row[0]))
    last = None
    if archiver and archiver.last_archived_wal:
        with contextlib.suppress(ValueError):
            last = physical.parse_wal_name(archiver.last_archived_wal).number
    if last is None:
        first = (
            WalSegment.objects.filter(database=database, kind=WalKind.SEGMENT)
            .order_by("-segment_number")
            .values_list("segment_number", flat=True)
            .first()
        )
        last = first
    return None if last is None else max(0, current - last)


def wal_purge_orphans(*, limit: int = 5000) -> dict:
    """Delete the files of WAL whose database (or environment) was deleted, then the rows.

    A file that cannot be deleted now keeps its row, so the next run tries again."""
    errors: list[str] = []
    orphans = WalSegment.objects.filter(database__isnull=True)[:limit]
    removed, bytes_removed = _delete_segments(orphans, errors)
    return {"removed": removed, "bytes": bytes_removed, "errors": errors}


def _delete_segments(segments, errors: list[str]) -> tuple[int, int]:
    """Delete each segment's files from every destination, then its row; a segment whose
    files cannot all be deleted keeps its row (and goes in ``errors``) for the next run.
    Returns (segments removed, bytes freed)."""
    removed = bytes_removed = 0
    backends = DestinationBackends()
    for segment in segments.prefetch_related("destinations"):
        try:
            for destination in segment.destinations.all():
                delete_artifact(backends[destination], segment.key)
        except Exception as exc:  # noqa: BLE001 - retried next run
            errors.append(f"{segment.name}: {exc}")
            continue
        bytes_removed += segment.stored_size
        removed += 1
        segment.delete()
    return removed, bytes_removed
