"""What ``/metrics`` reports: Prometheus metrics read from several apps' rows.

A scrape costs the same ten or so queries whatever the number of backups, WAL files or alerts:
every figure comes from an aggregate (GROUP BY, the newest row of each series by a window
function, conditional counts for the histogram's buckets), never from reading rows one by
one, and the rows the results are keyed by (organisations, environments, databases) are read
once. What grows with the data is the number of series, one set per database (and per kind
of backup), not the queries.

Label values are slugs (unique under their parent, stable, safe in PromQL): ``organization``,
``project``, ``environment`` and ``database`` as API.md names them. Backups of a whole
environment (``full``, ``filesystem``) have ``database=""``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DurationField, F, Func, Q, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from alerts.models import Alert
from backups.models import Backup, BackupKind, BackupStatus, WalArchiver
from drills.models import Drill, DrillPolicy, DrillStatus
from organizations.models import Database, Environment, Organisation
from restores.models import Restore, RestoreStatus

DATABASE_LABELS = ["organization", "project", "environment", "database"]
SERIES_LABELS = [*DATABASE_LABELS, "kind"]

# Upper bounds in seconds: a small SQLite dump takes a second, a large base backup hours.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)

RUNNING_BACKUP_STATUSES = (BackupStatus.IN_PROGRESS, BackupStatus.ABORTING)
RUNNING_RESTORE_STATUSES = (RestoreStatus.IN_PROGRESS,)

# A series of backups: (environment id, database id or None for the environment's own, kind).
SeriesKey = tuple[uuid.UUID, uuid.UUID | None, str]


@dataclass(frozen=True)
class _DatabaseRow:
    labels: tuple[str, str, str, str]
    environment_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True)
class Catalogue:
    """The label values of every organisation, environment and database, read once."""

    organisations: list[str]
    environments: dict[uuid.UUID, tuple[str, str, str]]
    databases: dict[uuid.UUID, _DatabaseRow]

    def series_labels(self, key: SeriesKey) -> list[str] | None:
        environment_id, database_id, kind = key
        environment = self.environments.get(environment_id)
        if environment is None:
            return None
        database = self.databases.get(database_id) if database_id else None
        return [*(database.labels if database else (*environment, "")), kind]


def catalogue() -> Catalogue:
    environments = {
        pk: (organisation, project, slug)
        for pk, slug, project, organisation in Environment.objects.values_list(
            "id", "slug", "project__slug", "project__organisation__slug"
        ).order_by()
    }
    databases = {}
    for pk, slug, environment_id, created_at in Database.objects.values_list(
        "id", "slug", "environment_id", "created_at"
    ).order_by():
        databases[pk] = _DatabaseRow(
            labels=(*environments[environment_id], slug),
            environment_id=environment_id,
            created_at=created_at,
        )
    organisations = list(Organisation.objects.order_by("slug").values_list("slug", flat=True))
    return Catalogue(organisations=organisations, environments=environments, databases=databases)


# --- backups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatestBackup:
    started_at: datetime | None
    completed_at: datetime
    size: int | None

    @property
    def seconds(self) -> float | None:
        return (self.completed_at - self.started_at).total_seconds() if self.started_at else None


class RunDuration(Func):
    """``completed_at - started_at``, in each database's own arithmetic: an interval on
    PostgreSQL (compared with intervals, five times faster than as epoch seconds), integer
    microseconds on SQLite from Julian days (Django's portable subtraction calls a Python
    function per row there: half a second per scrape at 10,000 backups). Julian days carry
    tens of microseconds of rounding error, so SQLite's are rounded to the millisecond: a
    60-second run stays in the bucket of 60."""

    output_field = DurationField()
    template = "(%(expressions)s)"
    arg_joiner = " - "

    def __init__(self, **extra):
        super().__init__(F("completed_at"), F("started_at"), **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="CAST(ROUND((julianday(%(expressions)s)) * 86400000.0) * 1000 AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


def latest_completed() -> dict[SeriesKey, LatestBackup]:
    """The newest completed backup of every series, in one query (ROW_NUMBER per series).
    One sort of the completed rows; subqueries probing the (database, -created_at) index
    per series were slower: a kind a database never had scans all its rows."""
    newest_first = Window(
        RowNumber(),
        partition_by=[F("environment_id"), F("database_id"), F("kind")],
        order_by=[F("completed_at").desc(nulls_last=True), F("created_at").desc()],
    )
    rows = (
        Backup.objects.filter(status=BackupStatus.COMPLETED, completed_at__isnull=False)
        .annotate(position=newest_first)
        .filter(position=1)
        .values_list("environment_id", "database_id", "kind", "completed_at", "started_at", "size")
        .order_by()
    )
    return {
        (environment_id, database_id, kind): LatestBackup(started_at, completed_at, size)
        for environment_id, database_id, kind, completed_at, started_at, size in rows
    }


def last_success_per_database(
    catalogue: Catalogue, latest: dict[SeriesKey, LatestBackup]
) -> dict[uuid.UUID, datetime | None]:
    """When each database was last backed up: its own newest completed backup of any kind,
    or its environment's newest ``full`` backup if it started after the database was added
    (it holds every database the environment had then)."""
    newest: dict[uuid.UUID, datetime | None] = dict.fromkeys(catalogue.databases)
    newest_full: dict[uuid.UUID, LatestBackup] = {}
    for (environment_id, database_id, kind), backup in latest.items():
        if database_id in newest:
            current = newest[database_id]
            if current is None or backup.completed_at > current:
                newest[database_id] = backup.completed_at
        elif kind == BackupKind.FULL:
            newest_full[environment_id] = backup
    for database_id, row in catalogue.databases.items():
        full = newest_full.get(row.environment_id)
        if full is None or (full.started_at or full.completed_at) < row.created_at:
            continue
        current = newest[database_id]
        if current is None or full.completed_at > current:
            newest[database_id] = full.completed_at
    return newest


@dataclass(frozen=True)
class DurationHistogram:
    cumulative_counts: list[int]  # one per DURATION_BUCKETS bound, then +Inf
    total_seconds: float


def duration_histograms() -> dict[SeriesKey, DurationHistogram]:
    """Durations of the completed backups of each series, counted per bucket bound in SQL."""
    bounds = {
        f"le_{index}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        Backup.objects.filter(
            status=BackupStatus.COMPLETED, started_at__isnull=False, completed_at__isnull=False
        )
        .annotate(duration=RunDuration())
        .values("environment_id", "database_id", "kind")
        .annotate(**bounds, count=Count("id"), total=Sum("duration"))
        .order_by()
    )
    histograms = {}
    for row in rows:
        counts = [row[f"le_{index}"] for index in range(len(DURATION_BUCKETS))]
        total = row["total"] or timedelta(0)
        histograms[(row["environment_id"], row["database_id"], row["kind"])] = DurationHistogram(
            cumulative_counts=[*counts, row["count"]], total_seconds=total.total_seconds()
        )
    return histograms


def backups_by_status() -> dict[str, tuple[int, int]]:
    """Status -> (how many backups, the bytes they hold)."""
    rows = Backup.objects.values_list("status").annotate(n=Count("id"), size=Sum("size")).order_by()
    return {status: (n, size or 0) for status, n, size in rows}


# --- drills -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastDrill:
    finished_at: datetime
    rto_seconds: float | None


def last_passed_drills() -> dict[uuid.UUID, LastDrill]:
    """The newest passed drill of every database, in one query (ROW_NUMBER per database)."""
    newest_first = Window(
        RowNumber(),
        partition_by=[F("database_id")],
        order_by=[F("finished_at").desc(nulls_last=True), F("created_at").desc()],
    )
    rows = (
        Drill.objects.filter(
            status=DrillStatus.PASSED, database__isnull=False, finished_at__isnull=False
        )
        .annotate(position=newest_first)
        .filter(position=1)
        .values_list("database_id", "finished_at", "rto_seconds")
        .order_by()
    )
    return {pk: LastDrill(finished, rto) for pk, finished, rto in rows}


def drilled_databases() -> set[uuid.UUID]:
    """Databases whose drill policy is enabled: each has a last-success series (0 until one
    passes), so an alert rule sees a drill schedule that never succeeds."""
    return set(DrillPolicy.objects.filter(enabled=True).values_list("database_id", flat=True))


# --- WAL, jobs, alerts, queue -----------------------------------------------------------------


def wal_last_archived() -> dict[uuid.UUID, datetime]:
    """When each database with WAL archiving on last archived a file. The archiver row is
    updated by every archived segment, so this reads one row per database, not its WAL."""
    return dict(
        WalArchiver.objects.filter(
            last_archived_at__isnull=False, database__environment__schedule__wal_enabled=True
        )
        .values_list("database_id", "last_archived_at")
        .order_by()
    )


def running_jobs() -> dict[tuple[str, str], int]:
    """(organisation slug, "backup" or "restore") -> how many are running now."""
    counts: dict[tuple[str, str], int] = {}
    for kind, queryset in (
        ("backup", Backup.objects.filter(status__in=RUNNING_BACKUP_STATUSES)),
        ("restore", Restore.objects.filter(status__in=RUNNING_RESTORE_STATUSES)),
    ):
        for organisation, n in (
            queryset.values_list("organisation__slug").annotate(n=Count("id")).order_by()
        ):
            counts[(organisation, kind)] = n
    return counts


def open_alerts() -> list[tuple[str, str, str, int]]:
    """(organisation slug, kind, severity, count) of the alerts neither resolved nor dismissed."""
    return list(
        Alert.objects.filter(resolved_at__isnull=True, dismissed_at__isnull=True)
        .values_list("organisation__slug", "kind", "severity")
        .annotate(n=Count("id"))
        .order_by("organisation__slug", "kind", "severity")
    )


def queue_depth() -> int | None:
    """Tasks waiting in django-q2's broker (the OrmQ table or the Redis list), None when
    the broker does not answer."""
    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - an unreachable broker is reported, not raised
        return None


# --- the collector ----------------------------------------------------------------------------


class StrongboxCollector:
    """Builds every metric family from the queries above, once per scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        names = catalogue()
        latest = latest_completed()
        yield from self._per_database(names, latest, now)
        yield from self._per_series(names, latest)
        yield from self._drills(names)
        yield from self._operations(names)
        # Last: the ORM broker may recycle an old connection before it counts.
        depth = queue_depth()
        up = 0 if depth is None else 1
        yield _gauge("strongbox_broker_up", "1 when the task broker answers.", up)
        if depth is not None:
            yield _gauge("strongbox_queue_depth", "Tasks waiting in the broker.", depth)

    def _per_database(self, names: Catalogue, latest, now: datetime) -> Iterator[Metric]:
        last_success = GaugeMetricFamily(
            "strongbox_database_last_success_timestamp_seconds",
            "When the newest completed backup holding this database finished (Unix time; "
            "0 when it has none).",
            labels=DATABASE_LABELS,
        )
        for database_id, finished in last_success_per_database(names, latest).items():
            labels = list(names.databases[database_id].labels)
            last_success.add_metric(labels, finished.timestamp() if finished else 0)
        yield last_success

        wal_age = GaugeMetricFamily(
            "strongbox_wal_archive_age_seconds",
            "Seconds since the newest WAL file of this database was archived (WAL archiving "
            "on only).",
            labels=DATABASE_LABELS,
        )
        for database_id, archived_at in wal_last_archived().items():
            if database_id in names.databases:
                age = max(0.0, (now - archived_at).total_seconds())
                wal_age.add_metric(list(names.databases[database_id].labels), age)
        yield wal_age

    def _drills(self, names: Catalogue) -> Iterator[Metric]:
        rto = GaugeMetricFamily(
            "strongbox_drill_rto_seconds",
            "Recovery time measured by the newest passed restore drill of this database: from "
            "its start to a throwaway copy answering queries with all its rows.",
            labels=DATABASE_LABELS,
        )
        last_success = GaugeMetricFamily(
            "strongbox_drill_last_success_timestamp_seconds",
            "When the newest passed restore drill of this database finished (Unix time; 0 "
            "when a database with drills enabled has none).",
            labels=DATABASE_LABELS,
        )
        passed = last_passed_drills()
        for database_id in sorted(set(passed) | drilled_databases(), key=str):
            if database_id not in names.databases:
                continue
            labels = list(names.databases[database_id].labels)
            drill = passed.get(database_id)
            last_success.add_metric(labels, drill.finished_at.timestamp() if drill else 0)
            if drill is not None and drill.rto_seconds is not None:
                rto.add_metric(labels, drill.rto_seconds)
        yield rto
        yield last_success

    def _per_series(self, names: Catalogue, latest) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "strongbox_backup_size_bytes",
            "Stored size of the newest completed backup of this database and kind.",
            labels=SERIES_LABELS,
        )
        last_duration = GaugeMetricFamily(
            "strongbox_backup_last_duration_seconds",
            "How long the newest completed backup of this database and kind ran.",
            labels=SERIES_LABELS,
        )
        for key, backup in latest.items():
            labels = names.series_labels(key)
            if labels is None:
                continue
            if backup.size is not None:
                size.add_metric(labels, backup.size)
            if backup.seconds is not None:
                last_duration.add_metric(labels, backup.seconds)
        yield size
        yield last_duration

        durations = HistogramMetricFamily(
            "strongbox_backup_duration_seconds",
            "Run times of the completed backups Strongbox holds (deleted ones leave it).",
            labels=SERIES_LABELS,
        )
        bounds = [str(float(bound)) for bound in DURATION_BUCKETS] + ["+Inf"]
        for key, histogram in duration_histograms().items():
            labels = names.series_labels(key)
            if labels is not None:
                buckets = list(zip(bounds, histogram.cumulative_counts, strict=True))
                durations.add_metric(labels, buckets, histogram.total_seconds)
        yield durations

    def _operations(self, names: Catalogue) -> Iterator[Metric]:
        by_status = backups_by_status()
        backups = GaugeMetricFamily("strongbox_backups", "Backups by status.", labels=["status"])
        for status in BackupStatus.values:
            backups.add_metric([status], by_status.get(status, (0, 0))[0])
        yield backups
        yield _gauge(
            "strongbox_backup_stored_bytes",
            "Bytes held by completed backups (one copy).",
            by_status.get(BackupStatus.COMPLETED, (0, 0))[1],
        )

        running = running_jobs()
        jobs = GaugeMetricFamily(
            "strongbox_running_jobs",
            "Backups and restores running now.",
            labels=["organization", "kind"],
        )
        for organisation in names.organisations:
            for kind in ("backup", "restore"):
                jobs.add_metric([organisation, kind], running.get((organisation, kind), 0))
        yield jobs

        alerts = GaugeMetricFamily(
            "strongbox_alerts_open",
            "Alerts neither resolved nor dismissed.",
            labels=["organization", "kind", "severity"],
        )
        for organisation, kind, severity, n in open_alerts():
            alerts.add_metric([organisation, kind, severity], n)
        yield alerts


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


# A registry of our own: the process-wide default one would add the Python process's
# metrics of whichever web worker answered, which say nothing about the service.
registry = CollectorRegistry()
registry.register(StrongboxCollector())
