"""Reads of restore logs, always scoped to one organisation, and their progress event;
the plan of a restore (validated exactly as the restore request validates it)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from api.base.routes import parse_uuid
from backups.models import Backup, BackupStatus
from backups.progress import iso, progress_event, run_duration
from config.errors import InvalidInput, NotFound, Unprocessable
from organizations.models import Database, Environment, Organisation
from pitr.coverage import pitr_coverage, pitr_validate_timestamp
from pitr.setup import archive_command_line
from restores.models import ACTIVE_RESTORE_STATUSES, Restore, RestorePhase, RestoreStatus
from restores.plan import PITR_KINDS, RestorePlan, family, restore_plan_for

NEW_TARGET_DISABLED = "targetType 'new' is disabled until orchestration exists"


def restores_for_organisation(*, organisation: Organisation) -> QuerySet[Restore]:
    """Every restore log of the organisation, newest first, with what a list renders."""
    return (
        Restore.objects.filter(organisation=organisation)
        .select_related(
            "backup",
            "source_environment__project",
            "target_environment__project",
            "target_database",
            "requested_by",
            "safety_backup",
        )
        .order_by("-created_at", "-id")
    )


def restores_for_environment(
    *, organisation: Organisation, environment: Environment
) -> QuerySet[Restore]:
    """Restore logs where the environment is the source or the target (seed 003)."""
    return restores_for_organisation(organisation=organisation).filter(
        Q(source_environment=environment) | Q(target_environment=environment)
    )


def restore_get(*, organisation: Organisation, restore_id) -> Restore:
    pk = parse_uuid(restore_id)
    restore = (
        restores_for_organisation(organisation=organisation).filter(pk=pk).first()
        if pk is not None
        else None
    )
    if restore is None:
        raise NotFound(f"Restore {restore_id} not found.")
    return restore


def restore_latest_for_backup(*, organisation: Organisation, backup) -> Restore | None:
    return restores_for_organisation(organisation=organisation).filter(backup=backup).first()


def restore_planned_phases(restore: Restore) -> tuple[str, ...]:
    """The phases a restore runs, in order (RECOVER only for a point in time)."""
    return tuple(
        phase
        for phase in RestorePhase
        if phase != RestorePhase.RECOVER or restore.pitr_target is not None
    )


def restore_progress_event(restore: Restore) -> dict:
    """The same event shape as a backup's."""
    return progress_event(
        restore,
        running=restore.status == RestoreStatus.IN_PROGRESS,
        planned=restore_planned_phases(restore),
    )


def restore_final_event_name(restore: Restore) -> str | None:
    """``done`` or ``failed`` once the restore has ended, else None."""
    return {RestoreStatus.COMPLETED: "done", RestoreStatus.FAILED: "failed"}.get(restore.status)


def restore_undoable(restore: Restore) -> bool:
    """A completed restore whose safety backup completed can be put back."""
    safety = restore.safety_backup
    return (
        restore.status == RestoreStatus.COMPLETED
        and safety is not None
        and safety.status == BackupStatus.COMPLETED
    )


def restore_result(restore: Restore) -> dict:
    """What a finished restore's final event adds: what the restore page shows once it
    ended (how much it read, how long it took, its safety backup, whether undo applies)."""
    safety = restore.safety_backup
    return {
        "bytesRead": restore.bytes_done,
        "startedAt": iso(restore.started_at),
        "completedAt": iso(restore.completed_at),
        "durationSec": run_duration(restore),
        "safetyBackup": {
            "id": safety.pk,
            "name": safety.name,
            "status": safety.status,
            "statusLabel": safety.get_status_display(),
            "size": safety.size,
        }
        if safety is not None
        else None,
        "undoable": restore_undoable(restore),
    }


def restore_progress_results(pks: list) -> dict:
    """The progress event of each restore, and its final event's name once it ended; a
    final event carries the restore's ``result``. One query (with the safety backups)."""
    found = {
        restore.pk: restore
        for restore in Restore.objects.filter(pk__in=pks).select_related("safety_backup")
    }
    gone = ({"status": "failed", "message": "The restore no longer exists."}, "failed")
    results = {}
    for pk in pks:
        restore = found.get(pk)
        if restore is None:
            results[pk] = gone
            continue
        event, final = restore_progress_event(restore), restore_final_event_name(restore)
        if final:
            event["result"] = restore_result(restore)
        results[pk] = (event, final)
    return results


# --- the plan of a restore -----------------------------------------------------------------


def restore_plan(
    *,
    backup: Backup,
    target_type: str,
    target_environment: Environment | str | None = None,
    target_database: Database | str | None = None,
    pitr_timestamp: datetime | None = None,
) -> RestorePlan:
    """What restoring ``backup`` would replace, or the ApplicationError that refuses it.

    The restore request calls this very function, so a plan and the restore that follows
    it agree. ``target_environment`` and ``target_database`` are rows or ids (another
    organisation's is reported exactly like a missing one). A restore already running into
    the target is a warning here (the request refuses it).
    """
    target_type = (target_type or "").strip().lower()
    if target_type == "new":
        raise Unprocessable(NEW_TARGET_DISABLED, fields={"target_type": [NEW_TARGET_DISABLED]})
    if target_type not in Restore.TargetType.values:
        raise InvalidInput(
            f"Unknown targetType {target_type!r}: use 'same' or 'other'.",
            fields={"target_type": ["Must be 'same' or 'other'."]},
        )
    if backup.status != BackupStatus.COMPLETED:
        raise Unprocessable(
            f"Only a completed backup can be restored; {backup.name} is {backup.status}."
        )
    environment = _target_environment(backup, target_type, target_environment)
    database = _target_database(backup, environment, target_database)
    if pitr_timestamp is not None:
        _check_pitr(backup=backup, pitr_timestamp=pitr_timestamp)
    plan = restore_plan_for(
        backup, environment, target_database=database, pitr=pitr_timestamp is not None
    )
    if restore_running_into(environment) is not None:
        plan.warnings.append(
            f"A restore into {environment} is already running: a restore now is refused "
            "until it finishes."
        )
    return plan


def restore_running_into(environment: Environment) -> Restore | None:
    return Restore.objects.filter(
        target_environment=environment, status__in=ACTIVE_RESTORE_STATUSES
    ).first()


def _target_environment(backup: Backup, target_type: str, target_environment) -> Environment:
    if target_type == Restore.TargetType.SAME:
        if target_environment is not None and str(
            getattr(target_environment, "pk", target_environment)
        ) != str(backup.environment_id):
            raise InvalidInput(
                "targetEnvironmentId is only for targetType 'other'.",
                fields={"target_environment": ["Leave it out, or use targetType 'other'."]},
            )
        return backup.environment
    if target_environment in (None, ""):
        raise InvalidInput(
            "targetEnvironmentId is required when targetType is 'other'.",
            fields={"target_environment": ["This field is required when targetType is 'other'."]},
        )
    reference = getattr(target_environment, "pk", target_environment)
    pk = parse_uuid(reference)
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


def _target_database(backup: Backup, environment: Environment, target_database):
    """The database the caller chose, in the target environment, or None.

    A body field, so an unknown one is a 400 naming it; another organisation's database is
    answered exactly like one that does not exist.
    """
    if target_database in (None, ""):
        return None
    reference = getattr(target_database, "pk", target_database)
    pk = parse_uuid(reference)
    found = (
        Database.objects.select_related("environment__project")
        .filter(pk=pk, environment__project__organisation_id=backup.organisation_id)
        .first()
        if pk
        else None
    )
    if found is None:
        message = f"No database {reference} in this organisation."
        raise InvalidInput(message, fields={"target_database": [message]})
    if found.environment_id != environment.pk:
        message = (
            f"{found.name} is a database of {found.environment}, not of the target "
            f"environment {environment}."
        )
        raise InvalidInput(message, fields={"target_database": [message]})
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
        raise Unprocessable(message, fields={"pitr_timestamp": [message]})
    pitr_validate_timestamp(
        environment=backup.environment, timestamp=pitr_timestamp, database=database
    )


# What each status of the PITR card means, in words (the API's values, README's set-up guide).
COVERAGE_STATUS_TEXT = {
    "ok": "Every PostgreSQL database can be recovered to any second inside the window.",
    "no-window": "No base backup with its WAL yet: take a base backup now (or wait for the "
    "next full-backup slot) and a window opens once its end is archived.",
    "gaps": "WAL is missing from the archive (never archived, or gone from the destinations "
    "as the verification found): recovery cannot cross a gap, so the window ends before it. "
    "The next base backup starts a new window.",
    "failing": "The database server's archive_command is failing: WAL piles up on the server "
    "and nothing after the last archived segment can be recovered until it works again.",
    "no-postgresql-database": "This environment has no PostgreSQL database.",
}
ARCHIVING_STATUS_TEXT = {
    "ok": "archive_command stores every finished segment.",
    "idle-or-lagging": "Nothing archived for a while: a quiet server (set archive_timeout) "
    "or archiving that fell behind.",
    "failing": "archive_command's last calls failed; PostgreSQL keeps the segments and retries.",
    "not-started": "No WAL received yet: set archive_command on the server (below).",
}


def pitr_timeline(environment, width: int = 640) -> dict | None:
    """The recoverable window of the environment's PostgreSQL databases, drawn as bars
    (windows), ticks (base backups) and red marks (WAL gaps); None without WAL archiving.

    For the restore form and the environment page."""
    schedule = getattr(environment, "schedule", None)
    if schedule is None or not schedule.wal_enabled:
        return None  # every environment page asks: no coverage work without WAL archiving
    coverage = pitr_coverage(environment=environment)
    if coverage["status"] == "no-postgresql-database":
        return None

    def parse(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    archive_commands = {
        str(d.pk): archive_command_line(d)
        for d in environment.databases.filter(engine="postgresql")
    }
    rows, times = [], []
    for database in coverage["databases"]:
        windows = [(parse(w["from"]), parse(w["to"])) for w in database["windows"]]
        bases = [(parse(b["startTime"] or b["completedAt"]), b) for b in database["baseBackups"]]
        times += [t for w in windows for t in w] + [t for t, _ in bases if t]
        rows.append(
            {
                "id": database["databaseId"],
                "archive_command": archive_commands.get(database["databaseId"], ""),
                "status_text": ARCHIVING_STATUS_TEXT.get(database["archiving"]["status"], ""),
                "verification": database["verification"],
                "name": database["databaseName"],
                "windows": windows,
                "bases": bases,
                "gaps": database["gaps"],
                "archiving": database["archiving"],
            }
        )
    status_text = COVERAGE_STATUS_TEXT.get(coverage["status"], "")
    if not times:
        return {"coverage": coverage, "rows": rows, "drawable": False, "status_text": status_text}
    start, end = min(times), max(times)
    span = (end - start).total_seconds() or 1.0

    def x(moment):
        return round(8 + (width - 16) * (moment - start).total_seconds() / span, 1)

    for row in rows:
        row["bars"] = [
            {
                "x": x(a),
                "w": max(x(b) - x(a), 2),
                "label": f"{a:%Y-%m-%d %H:%M:%S} – {b:%Y-%m-%d %H:%M:%S} UTC",
            }
            for a, b in row["windows"]
        ]
        row["ticks"] = [
            {"x": x(t), "label": f"Base backup {b['name']} at {t:%Y-%m-%d %H:%M} UTC"}
            for t, b in row["bases"]
            if t
        ]
    return {
        "coverage": coverage,
        "rows": rows,
        "status_text": status_text,
        "drawable": True,
        "width": width,
        "start": start,
        "end": end,
        "earliest": parse(coverage["earliestRecoverableTime"]),
        "latest": parse(coverage["latestRecoverableTime"]),
    }
