"""Coverage: the windows a recovery_target_time can reach, archiver status, gaps."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Min, Sum
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus, WalArchiver, WalKind, WalSegment
from config.errors import InvalidInput, Unprocessable
from organizations.models import Database, Environment
from pitr import physical
from pitr.verify import wal_verify

logger = logging.getLogger(__name__)

# Archiving is "lagging" when nothing was archived for this long while the server has
# finished segments waiting; a quiet database (no new segment) is not lagging.
WAL_LAG_SECONDS = settings.STRONGBOX_WAL_LAG_SECONDS


# --- coverage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Times a recovery_target_time can reach from one base backup."""

    base: Backup
    earliest: datetime
    latest: datetime


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def base_backups(database: Database) -> list[Backup]:
    return list(
        Backup.objects.filter(
            database=database,
            kind=BackupKind.BASE,
            status=BackupStatus.COMPLETED,
            base_position__isnull=False,
        )
        .select_related("base_position")
        .order_by("base_position__start_segment_number", "created_at")
    )


def _segment_map(database: Database) -> dict[int, tuple[int, datetime | None]]:
    """Segment number -> (timeline, last transaction time), the highest timeline winning
    as recovery_target_timeline = 'latest' does."""
    chosen: dict[int, tuple[int, datetime | None]] = {}
    # A segment the archive verification found in no destination intact (``lost``) cannot
    # be replayed: it counts as missing (``pitr.verify``).
    rows = WalSegment.objects.filter(
        database=database, kind=WalKind.SEGMENT, lost=False
    ).values_list("segment_number", "timeline", "last_xact_at")
    for number, tli, last_xact in rows:
        if number not in chosen or chosen[number][0] < tli:
            chosen[number] = (tli, last_xact)
    return chosen


def _base_earliest(base: Backup) -> datetime:
    position = base.base_position
    if position.stop_time:
        # STOP TIME has whole seconds; a commit in that second may precede consistency.
        return position.stop_time + timedelta(seconds=1)
    return base.completed_at or base.created_at


def database_windows(database: Database) -> list[Window]:
    """One window per base backup whose WAL is unbroken from its start to a transaction."""
    segments = _segment_map(database)
    windows = []
    for base in base_backups(database):
        position = base.base_position
        number = position.start_segment_number
        latest = None
        while number in segments and segments[number][0] >= position.timeline:
            last_xact = segments[number][1]
            if last_xact and (latest is None or last_xact > latest):
                latest = last_xact
            number += 1
        if number == position.start_segment_number:
            continue  # not even its first segment is archived
        if position.stop_wal:
            stop_number = physical.parse_wal_name(position.stop_wal).number or 0
            if number <= stop_number:
                continue  # the WAL that makes it consistent is missing
        earliest = _base_earliest(base)
        if latest is not None and latest >= earliest:
            windows.append(Window(base=base, earliest=earliest, latest=latest))
    return windows


def wal_gaps(database: Database) -> list[dict]:
    """Runs of missing segments per timeline, between the first and the last recorded one:
    never archived (``reason`` ``not-archived``) or archived but no destination holds them
    intact any more (``lost``, with the verification's ``problem``). A run of lost segments
    at either end has no ``afterWal`` / ``beforeWal``."""
    rows = (
        WalSegment.objects.filter(database=database, kind=WalKind.SEGMENT)
        .order_by("timeline", "segment_number")
        .values_list("timeline", "segment_number", "name", "lost", "problem")
    )
    gaps = []
    run: dict | None = None  # the gap being built
    previous = None  # (timeline, number, name) of the last segment that is there

    def close(before: str | None) -> None:
        nonlocal run
        if run is not None:
            run["beforeWal"] = before
            gaps.append(run)
            run = None

    last_timeline = None
    for tli, number, name, lost, problem in rows:
        if tli != last_timeline:
            close(None)
            previous = None
            last_timeline = tli
        if previous and number > previous[1] + 1 and run is None:
            run = _gap(tli, previous, previous[1] + 1, "not-archived")
        if run is not None and number > run["_next"]:
            run["missingSegments"] += number - run["_next"]  # never archived, inside the run
            run["_next"] = number
        if lost:
            if run is None:
                run = _gap(tli, previous, number, "lost")
            run["reason"] = "lost"
            run["problem"] = run["problem"] or problem or "missing"
            run["lostWal"].append(name)
            run["missingSegments"] += 1
            run["_next"] = number + 1
            continue
        close(name)
        previous = (tli, number, name)
    close(None)
    for gap in gaps:
        del gap["_next"]
    return gaps


def _gap(timeline: int, previous, first: int, reason: str) -> dict:
    return {
        "timeline": timeline,
        "afterWal": previous[2] if previous else None,
        "beforeWal": None,
        "firstMissingWal": physical.segment_name(timeline, first),
        "missingSegments": 0,
        "reason": reason,
        "lostWal": [],
        "problem": None,
        "_next": first,
    }


def _verification(database: Database) -> dict:
    """What the archive verification last found (``pitr.verify``)."""
    segments = WalSegment.objects.filter(database=database)
    totals = segments.aggregate(checked=Max("checked_at"), oldest=Min("verified_at"))
    return {
        "lastListedAt": iso(totals["checked"]),
        "oldestVerifiedAt": iso(totals["oldest"]),
        "unverifiedFiles": segments.filter(verified_at__isnull=True).count(),
        "filesWithProblems": segments.exclude(problem="").count(),
        "lostFiles": segments.filter(lost=True).count(),
    }


def _archiving(database: Database, now: datetime) -> dict:
    archiver = WalArchiver.objects.filter(database=database).first()
    if archiver is None:
        return {
            "status": "not-started",
            "lastArchivedWal": None,
            "lastArchivedAt": None,
            "lastFailedWal": None,
            "lastFailedAt": None,
            "lastError": None,
            "failedCount": 0,
            "consecutiveFailures": 0,
            "archivedCount": 0,
            "lagSeconds": None,
        }
    lag = (now - archiver.last_archived_at).total_seconds() if archiver.last_archived_at else None
    if archiver.consecutive_failures:
        status = "failing"
    elif lag is not None and lag > WAL_LAG_SECONDS:
        status = "idle-or-lagging"
    else:
        status = "ok"
    return {
        "status": status,
        "lastArchivedWal": archiver.last_archived_wal or None,
        "lastArchivedAt": iso(archiver.last_archived_at),
        "lastFailedWal": archiver.last_failed_wal or None,
        "lastFailedAt": iso(archiver.last_failed_at),
        "lastError": archiver.last_error or None,
        "failedCount": archiver.failed_count,
        "consecutiveFailures": archiver.consecutive_failures,
        "archivedCount": archiver.archived_count,
        "lagSeconds": round(lag, 1) if lag is not None else None,
    }


def _base_summary(base: Backup, windows: list[Window]) -> dict:
    position = base.base_position
    window = next((w for w in windows if w.base.pk == base.pk), None)
    return {
        "id": str(base.id),
        "name": base.name,
        "timeline": position.timeline,
        "startWal": position.start_wal,
        "startLsn": position.start_lsn,
        "stopLsn": position.stop_lsn or None,
        "startTime": iso(position.start_time),
        "stopTime": iso(position.stop_time),
        "completedAt": iso(base.completed_at),
        "size": base.size,
        "recoverableFrom": iso(window.earliest) if window else None,
        "recoverableTo": iso(window.latest) if window else None,
    }


def database_coverage(
    *, database: Database, now: datetime | None = None, windows: list[Window] | None = None
) -> dict:
    """One database's part of the coverage; ``windows`` when the caller has them already."""
    now = now or timezone.now()
    if windows is None:
        windows = database_windows(database)
    totals = WalSegment.objects.filter(database=database).aggregate(
        stored=Sum("stored_size"), latest=Max("last_xact_at")
    )
    return {
        "databaseId": str(database.id),
        "databaseName": database.name,
        "earliestRecoverableTime": iso(min((w.earliest for w in windows), default=None)),
        "latestRecoverableTime": iso(max((w.latest for w in windows), default=None)),
        "windows": [
            {"from": iso(w.earliest), "to": iso(w.latest), "baseBackupId": str(w.base.id)}
            for w in windows
        ],
        "baseBackups": [_base_summary(b, windows) for b in base_backups(database)],
        "archiving": _archiving(database, now),
        "gaps": wal_gaps(database),
        "verification": _verification(database),
        "walFiles": WalSegment.objects.filter(database=database).count(),
        "walStoredBytes": totals["stored"] or 0,
        "lastTransactionAt": iso(totals["latest"]),
    }


def pitr_databases(environment: Environment):
    return environment.databases.filter(engine="postgresql").order_by("name")


def pitr_window(*, environment: Environment) -> tuple[datetime, datetime] | None:
    """(earliest, latest) time every PostgreSQL database of the environment can be
    recovered to, or None. For the restore flow: a ``pitrTimestamp`` outside is a 422."""
    return _common_window(database_windows(d) for d in pitr_databases(environment))


def _common_window(per_database: Iterable[list[Window]]) -> tuple[datetime, datetime] | None:
    """The span inside every database's windows, or None (one has none, or they miss)."""
    bounds = []
    for windows in per_database:
        if not windows:
            return None
        bounds.append((min(w.earliest for w in windows), max(w.latest for w in windows)))
    if not bounds:
        return None
    earliest = max(b[0] for b in bounds)
    latest = min(b[1] for b in bounds)
    return (earliest, latest) if earliest <= latest else None


def pitr_coverage(*, environment: Environment, now: datetime | None = None) -> dict:
    """Seed 003's ``GET /api/environments/{env_id}/pitr`` body (camelCase)."""
    now = now or timezone.now()
    schedule = getattr(environment, "schedule", None)
    # Each database's windows are worked out once (they read all its WAL rows).
    per_database = [(d, database_windows(d)) for d in pitr_databases(environment)]
    databases = [database_coverage(database=d, now=now, windows=w) for d, w in per_database]
    window = _common_window(windows for _, windows in per_database)
    failing = any(d["archiving"]["status"] == "failing" for d in databases)
    gaps = any(d["gaps"] for d in databases)
    if not databases:
        status = "no-postgresql-database"
    elif failing:
        status = "failing"
    elif gaps:
        status = "gaps"
    elif window is None:
        status = "no-window"
    else:
        status = "ok"
    return {
        "environmentId": str(environment.id),
        "walEnabled": bool(schedule and schedule.wal_enabled),
        "walRetentionDays": schedule.wal_retention_days if schedule else None,
        "status": status,
        "earliestRecoverableTime": iso(window[0]) if window else None,
        "latestRecoverableTime": iso(window[1]) if window else None,
        "baseBackups": [b for d in databases for b in d["baseBackups"]],
        "databases": databases,
        "generatedAt": iso(now),
    }


def _window_text(windows: list[Window]) -> str:
    if not windows:
        return "there is no point-in-time recovery window yet"
    return "recoverable windows: " + ", ".join(
        f"{iso(w.earliest)} to {iso(w.latest)}" for w in windows
    )


def _lost_text(databases) -> str:
    """The first lost WAL segment of each database, for a refusal: why the window ends."""
    parts = []
    for database in databases:
        lost = next((g for g in wal_gaps(database) if g["reason"] == "lost"), None)
        if lost:
            parts.append(
                f" WAL segment {lost['lostWal'][0]} of {database.name} is missing from the "
                f"archive ({lost['problem']}); recovery cannot replay past it."
            )
    return "".join(parts)


def pitr_verify_listing(databases) -> None:
    """List the archive of each database (no re-read) before a restore is planned, so that
    a file lost since the last verification run is a gap now, not at recovery time."""
    for database in databases:
        try:
            wal_verify(database=database, reread_budget=0)
        except Exception:  # the last run's verdicts still stand
            logger.exception("listing the WAL archive of %s failed", database.pk)


def pitr_validate_timestamp(
    *, environment: Environment, timestamp: datetime, database: Database | None = None
) -> tuple[datetime, datetime]:
    """For the restore flow's ``pitrTimestamp``: the (earliest, latest) window that holds
    it, or Unprocessable (422) stating the window. ``environment`` is the one whose WAL is
    replayed (the backup's); ``database`` narrows it to one PostgreSQL database."""
    if timezone.is_naive(timestamp):
        raise InvalidInput(
            "pitrTimestamp needs a time zone.", fields={"pitr_timestamp": ["No time zone."]}
        )
    if database is not None:
        window = pitr_check_target(database=database, target=timestamp)
        return window.earliest, window.latest
    databases = list(pitr_databases(environment))
    pitr_verify_listing(databases)
    window = pitr_window(environment=environment)
    if window is None or not window[0] <= timestamp <= window[1]:
        where = (
            f"the recoverable window is {iso(window[0])} to {iso(window[1])}"
            if window
            else "there is no point-in-time recovery window yet"
        )
        raise Unprocessable(
            f"pitrTimestamp {iso(timestamp)} is outside the point-in-time recovery coverage "
            f"of {environment.name}: {where}.{_lost_text(databases)}",
            fields={"pitr_timestamp": ["Outside the recoverable window."]},
        )
    return window


def pitr_check_target(*, database: Database, target: datetime, verify: bool = True) -> Window:
    """The window (so the base backup) to recover ``target`` from; Unprocessable outside,
    naming the reachable windows and the lost segment that ends one. ``verify``: list the
    archive first (``pitr.verify``), so the window is the one the destinations hold."""
    if timezone.is_naive(target):
        raise InvalidInput(
            "The recovery target needs a time zone.", fields={"pitr_timestamp": ["No time zone."]}
        )
    if verify:
        pitr_verify_listing([database])
    windows = database_windows(database)
    inside = [w for w in windows if w.earliest <= target <= w.latest]
    if not inside:
        raise Unprocessable(
            f"{iso(target)} is outside the point-in-time recovery coverage of {database.name}: "
            f"{_window_text(windows)}.{_lost_text([database])}",
            fields={"pitr_timestamp": ["Outside the recoverable window."]},
        )
    # The latest base that still ends before the target: the least WAL to replay.
    return max(inside, key=lambda w: w.earliest)
