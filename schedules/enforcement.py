"""Retention enforcement: plan from the database, delete through the backup delete path.

``schedules.retention`` decides (pure, see its docstring for the exact rules); this
module maps an environment's Backup rows to the plan's input (``PlanRow``, with
``BackupInfo``'s attributes; ``retention_plan_for``, shared with the retention preview),
acts on the plan (``retention_enforce``, ``_CHUNK`` backups at a time) and writes each
backup's ``expires_at`` from it (``retention_update_expiry``; seed 001 shows it as
``expiredBy``).

Mapping decisions:

- the policy is the environment's schedule's (``Schedule.retention_policy()``); an
  environment without a schedule gets the empty policy, which keeps every scheduled
  backup and only removes failed backups after a week and manual ones past their own
  expiry;
- buckets are counted in the schedule's timezone (UTC without a schedule);
- ``source``: the backup's database (``str(database_id)``), so each database's
  ``database`` backups are a series of their own; ``full`` and ``filesystem`` backups
  have no database and are the environment's series. A ``database`` backup whose
  database row is gone (None) is a series of its own too;
- ``manual``: every backup not made by a schedule (manual and safety backups);
- ``protected``: a backup with an active restore (``being restored``), plus whatever
  the ``protected`` argument and the PITR hook (``pitr_protected``) name;
- ``locked_until``: the latest S3 Object Lock date of the backup's copies
  (``schedules.locks``): the plan keeps a locked backup until then;
- PostgreSQL base backups (kind ``base``) are not in the plan at all: they belong to
  the WAL archive and its own retention (``walRetentionDays``), not to GFS buckets.

``expires_at`` is written for scheduled backups only: on a manual backup it is the
user's own expiry, an input to the plan, never an output.
"""

from __future__ import annotations

import gc
import logging
import uuid
from collections import defaultdict
from collections.abc import Hashable, Mapping
from contextlib import contextmanager
from datetime import datetime

import psycopg
from django.db import connection, transaction
from django.db.models import CharField
from django.db.models.functions import Cast
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertKind, Severity
from alerts.services import alert_raise
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.services import DeletedBackup, backups_delete_batch
from organizations.models import Environment
from schedules.locks import has_locks, locked_until_by_backup, locks_extend
from schedules.models import Schedule
from schedules.retention import RetentionPlan, RetentionPolicy, plan_retention

logger = logging.getLogger(__name__)

BEING_RESTORED = "being restored"
PITR_WINDOW = "PITR window"
# Backups deleted per transaction and cleanup task, and per UPDATE of expires_at.
_CHUNK = 500
_SCHEDULED = BackupTrigger.SCHEDULED.value
_missing = object()


def pitr_protected(*, environment: Environment, now: datetime) -> dict[Hashable, str]:
    """Backups a point-in-time-recovery window still needs: ``{backup id: "PITR window"}``.

    The hook for PITR: today the only backups PITR replays WAL onto are base backups,
    which are outside GFS retention (see the module docstring), so nothing else is
    needed. When logical backups take part in PITR, return them here.
    """
    return {}


def _schedule_of(environment: Environment) -> Schedule | None:
    return Schedule.objects.filter(environment=environment).first()


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building many acyclic objects.

    Allocating 100,000 plan rows and decisions triggers repeated full collections that walk
    every live object: about a third of a preview's time. Nothing built here forms a
    cycle, so nothing is left for the collector to find afterwards.

    On the way out, what was built moves straight to the oldest generation (freeze, then
    unfreeze: two list merges); left in the youngest, the first collection after
    re-enabling would walk all of it (0.1 s of a preview at 100,000 backups).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


class PlanRow:
    """One backup as the plan reads it: ``plan_retention``'s input (the attributes of
    ``BackupInfo``) plus what enforcement needs besides (``trigger``, and the stored
    ``expires_at`` of a scheduled backup, which the plan does not take as input).

    A plain class with ``__slots__``: 100,000 of them take 0.03 s to build, frozen
    dataclasses (one ``object.__setattr__`` per field) 0.14 s.
    """

    __slots__ = (
        "id",
        "created_at",
        "kind",
        "status",
        "size",
        "manual",
        "expires_at",
        "protected",
        "source",
        "trigger",
        "stored_expires_at",
        "locked_until",
    )

    def __init__(self, pk, created_at, kind, status, size, trigger, expires_at, source, protected):
        self.id = pk
        self.created_at = created_at
        self.kind = kind
        self.status = status
        self.size = size or 0
        self.trigger = trigger
        self.manual = manual = trigger != _SCHEDULED
        self.stored_expires_at = expires_at
        self.expires_at = expires_at if manual else None
        self.protected = protected
        self.source = source
        self.locked_until = None  # set by _plan from the few locked copies


# The columns the plan reads besides the id, the timestamps and the database (which need
# converting per vendor, below), in ``PlanRow``'s argument order. Only these are read:
# never the whole row, never the copies. A further input to the plan is one more column
# here (or beside ``expires_at`` if it is a timestamp) and one more slot in ``PlanRow``.
_PLAIN_COLUMNS = ("kind", "status", "size", "trigger")


def _parse_timestamptz_in_c(cursor) -> None:
    """Give a psycopg 3 cursor psycopg's default timestamptz loader (C, when psycopg's
    binary or C build is installed) in place of the connection's (Django's)."""
    adapters = getattr(cursor, "adapters", None)
    if adapters is None or connection.timezone_name != "UTC":
        return  # psycopg 2, or a session time zone the values should not come back in
    oid = psycopg.adapters.types["timestamptz"].oid
    adapters.register_loader(oid, psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT))


def _plan_rows(environment: Environment, reasons: Mapping[str, str]) -> list[PlanRow]:
    """The environment's backups to plan, each with its protection from ``reasons`` (by
    ``str(id)``), in no particular order: the plan sorts them itself, cheaper than the
    database's ORDER BY over 100,000 rows. Ids are ``str(uuid)``, the database id None for
    environment backups."""
    backups = (
        Backup.objects.filter(environment=environment)
        .exclude(status=BackupStatus.DELETED)
        .exclude(kind=BackupKind.BASE)
        .order_by()
    )
    columns = _PLAIN_COLUMNS
    rows: list[PlanRow] = []
    if connection.vendor != "sqlite":
        # uuid::text is str(uuid) already: read the ORM's SQL through a plain cursor,
        # without the per-row iterator, and with psycopg's own timestamptz loader, which
        # parses in C. Django's (a Python subclass, one call per value, to set the
        # tzinfo) took 0.3 s of CPU at 100,000 rows; psycopg's gives the same aware UTC
        # values, in the session's time zone, which Django sets to UTC.
        text = backups.annotate(
            id_text=Cast("id", CharField()), database_text=Cast("database_id", CharField())
        ).values_list("id_text", "created_at", *columns, "expires_at", "database_text")
        sql, params = text.query.sql_with_params()
        with connection.cursor() as cursor:
            _parse_timestamptz_in_c(cursor.cursor)
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(10_000):
                rows += [
                    PlanRow(pk, created, kind, status, size, trigger, expires, db, reasons.get(pk))
                    for pk, created, kind, status, size, trigger, expires, db in chunk
                ]
        return rows
    # Django's per-row SQLite converters (UUID, parse_datetime, make_aware) and its row
    # iterator cost several times the planning itself at 100,000 rows: read the columns as
    # stored through a plain cursor (the SQL is still the ORM's) and convert them here.
    text = backups.annotate(
        created_text=Cast("created_at", CharField()),
        expires_text=Cast("expires_at", CharField()),
    ).values_list("id", "created_text", *columns, "expires_text", "database_id")
    sql, params = text.query.sql_with_params()
    # An environment has a handful of databases: their 32-digit ids (the column as
    # stored) are turned into ``str(uuid)`` once each, not once per row.
    database_ids: dict[str | None, str | None] = {None: None}
    # Django stores naive UTC text on SQLite; parsing the offset is far cheaper than
    # datetime.replace(tzinfo=...) afterwards.
    parse, utc = datetime.fromisoformat, "+00:00"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(10_000):
            for hex_id, created, kind, status, size, trigger, expires, database_hex in chunk:
                database_id = database_ids.get(database_hex, _missing)
                if database_id is _missing:
                    database_id = database_ids[database_hex] = str(uuid.UUID(database_hex))
                # str(uuid) from the 32 stored hex digits: a third of the cost of SQL's
                # SUBSTR and ||, a tenth of uuid.UUID's.
                pk = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
                rows.append(
                    PlanRow(
                        pk,
                        parse(created + utc),
                        kind,
                        status,
                        size,
                        trigger,
                        None if expires is None else parse(expires + utc),
                        database_id,
                        reasons.get(pk),
                    )
                )
    return rows


def _plan(
    *,
    environment: Environment,
    policy: RetentionPolicy | None,
    now: datetime,
    protected: Mapping[Hashable, str] | None,
    tz: str | None = None,
) -> tuple[RetentionPlan, list[PlanRow]]:
    if policy is None or tz is None:
        schedule = _schedule_of(environment)
        if policy is None:
            policy = schedule.retention_policy() if schedule else RetentionPolicy()
        zone = tz or (schedule.timezone if schedule else "UTC")
    else:
        zone = tz  # a preview: it read the schedule already

    # Keyed by str(backup id), as the plan's decisions are.
    reasons = {str(k): v for k, v in pitr_protected(environment=environment, now=now).items()}
    reasons.update({str(k): v for k, v in (protected or {}).items()})
    restored = (
        environment.organisation.restores.active()
        .filter(backup__environment=environment)
        .values_list("backup_id", flat=True)
        .distinct()
    )
    for backup_id in restored:
        reasons[str(backup_id)] = BEING_RESTORED

    locks = locked_until_by_backup(environment=environment, now=now)
    with _gc_paused():
        rows = _plan_rows(environment, reasons)
        if locks:
            for row in rows:
                row.locked_until = locks.get(row.id)
        return plan_retention(rows, policy, zone, now), rows


def retention_plan_for(
    *,
    environment: Environment,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
    protected: Mapping[Hashable, str] | None = None,
    tz: str | None = None,
) -> RetentionPlan:
    """The retention plan of ``environment``'s backups under ``policy``; nothing is changed.

    ``policy`` None uses the schedule's current policy; pass a proposed one to preview
    it. ``protected`` adds ``{backup id: reason}`` to what the database says is
    protected (an active restore, the PITR hook). Each decision's ``backup_id`` is the
    backup's id as a string, ``str(backup.pk)``: cheaper than UUIDs at 100,000 rows, and
    the form the API shows.
    """
    plan, _ = _plan(
        environment=environment,
        policy=policy,
        now=now or timezone.now(),
        protected=protected,
        tz=tz,
    )
    return plan


def _write_expiry(plan: RetentionPlan, rows: list[PlanRow]) -> int:
    by_value: dict[datetime | None, list] = defaultdict(list)
    for row in rows:
        if row.manual or row.status == BackupStatus.DELETING:
            continue
        expires_at = plan.expires_at(row.id)
        if expires_at != row.stored_expires_at:
            by_value[expires_at].append(row.id)
    # Many rows share a value (None for count-only rules, ``now`` for deletions): one
    # UPDATE per chunk of those; a CASE per row (bulk_update) only for the rest.
    singles = []
    for value, ids in by_value.items():
        if len(ids) == 1:
            singles.append(Backup(pk=ids[0], expires_at=value))
            continue
        for start in range(0, len(ids), _CHUNK):
            Backup.objects.filter(pk__in=ids[start : start + _CHUNK]).update(expires_at=value)
    Backup.objects.bulk_update(singles, ["expires_at"], batch_size=_CHUNK)
    return sum(len(ids) for ids in by_value.values())


def retention_update_expiry(*, environment: Environment, now: datetime | None = None) -> int:
    """Write each scheduled backup's ``expires_at`` from the current policy; returns how
    many changed. Call it after the policy changes, so ``expiredBy`` follows at once."""
    plan, rows = _plan(
        environment=environment, policy=None, now=now or timezone.now(), protected=None
    )
    changed = _write_expiry(plan, rows)
    if has_locks(environment=environment):
        # Locks follow on a worker: one S3 call per locked artifact has no place in a request.
        transaction.on_commit(
            lambda: async_task(
                "schedules.tasks.extend_locks",
                str(environment.pk),
                task_name=f"extend locks of {environment}",
            )
        )
    return changed


def retention_extend_locks(*, environment: Environment, now: datetime | None = None) -> int:
    """Extend the object locks of ``environment``'s backups that the current plan keeps
    longer than they are locked; returns how many copies changed."""
    plan, _ = _plan(environment=environment, policy=None, now=now or timezone.now(), protected=None)
    return locks_extend(environment=environment, plan=plan)


def retention_enforce(
    *, environment: Environment, now: datetime | None = None
) -> list[DeletedBackup]:
    """Delete what the current policy does not keep, through ``backups_delete_batch``.

    The plan's deletions go ``_CHUNK`` backups at a time: each chunk is marked
    ``deleting`` in one transaction, with one cleanup task for its copies, so memory
    and the size of a transaction stay bounded whatever the history. A backup that changed
    since the plan read it (a restore started, it is already being deleted) is skipped
    and reconsidered next time. Also refreshes ``expires_at`` and raises one info alert
    summarising what was removed. Returns the backups marked.
    """
    now = now or timezone.now()
    plan, rows = _plan(environment=environment, policy=None, now=now, protected=None)
    doomed = [decision.backup_id for decision in plan.decisions if not decision.keep]
    wanted = set(doomed)
    status_of = {row.id: row.status for row in rows if row.id in wanted}
    removed: list[DeletedBackup] = []
    for start in range(0, len(doomed), _CHUNK):
        chunk = {pk: status_of[pk] for pk in doomed[start : start + _CHUNK]}
        marked = backups_delete_batch(backups=chunk)
        if len(marked) < len(chunk):
            logger.info(
                "retention: kept %d of %d backup(s) for now: they changed meanwhile",
                len(chunk) - len(marked),
                len(chunk),
            )
        for backup in marked:
            logger.info(
                "retention: deleting %s (%s, %s, %s bytes): %s",
                backup.name,
                backup.kind,
                backup.created_at.isoformat(),
                backup.size,
                ", ".join(plan.decision(str(backup.pk)).reasons),
            )
        removed.extend(marked)
    _write_expiry(plan, rows)
    try:
        locks_extend(environment=environment, plan=plan)
    except Exception:
        # Deletions are done; the locks are tried again on the next run.
        logger.exception("retention: extending the locks of %s failed", environment)
    if removed:
        _raise_summary(environment, plan, removed)
    return removed


def _raise_summary(
    environment: Environment, plan: RetentionPlan, removed: list[DeletedBackup]
) -> None:
    freed = sum(backup.size for backup in removed)
    lines = [
        f"{backup.name}: {', '.join(plan.decision(str(backup.pk)).reasons)}"
        for backup in removed[:50]
    ]
    if len(removed) > 50:
        lines.append(f"... and {len(removed) - 50} more.")
    alert_raise(
        organisation=environment.project.organisation,
        kind=AlertKind.RETENTION_DELETED,
        title=f"Retention removed {len(removed)} backup(s) of {environment} "
        f"({_human_bytes(freed)})",
        message="\n".join(lines),
        environment=environment,
        severity=Severity.INFO,
    )


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def environments_with_schedule():
    """The environments retention is enforced for by the periodic task."""
    return Environment.objects.filter(schedule__isnull=False).select_related(
        "project__organisation"
    )
