"""Reads of backups and of the objects that own them, always scoped to one organisation.

Every API dialect and the HTML pages read through these functions, so tenancy and
the joins a page needs are decided once. An object of another organisation is
reported exactly like one that does not exist: ``config.errors.NotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum

from api.base.pagination import Listing
from api.base.routes import parse_uuid
from backups.age_format import parse_identities
from backups.keys import artifact_encryption, configured_age_recipients
from backups.models import (
    DELETION_STATUSES,
    AgeKeys,
    Backup,
    BackupCopy,
    BackupKind,
    BackupStatus,
    CopyStatus,
)
from config.errors import NotFound
from destinations.models import Destination
from organizations.models import Database, Environment, Organisation, Project


def backups_for_organisation(*, organisation: Organisation) -> QuerySet[Backup]:
    """Every backup of the organisation, newest first, with what any dialect renders.

    The related rows come in one JOIN (environment, project, database, schedule)
    and one prefetch (copies with their destination), so a page costs the same
    number of queries whatever its size.
    """
    return _with_relations(Backup.objects.filter(organisation=organisation))


def database_backups_for_organisation(*, organisation: Organisation) -> QuerySet[Backup]:
    """The organisation's backups of one database each (dumps and base backups), newest
    first: what a per-database list shows. A files archive or a ``full`` backup (the
    environment's whole restore point) belongs to no one database, nor does a backup whose
    database row is gone."""
    return backups_for_organisation(organisation=organisation).filter(
        kind__in=(BackupKind.DATABASE, BackupKind.BASE), database__isnull=False
    )


def _with_relations(queryset: QuerySet[Backup]) -> QuerySet[Backup]:
    # Secrets stay out of list reads: no page shows them, and none needs decrypting.
    copies = (
        BackupCopy.objects.select_related("destination")
        .defer("destination__secrets")
        .order_by("created_at", "id")
    )
    return (
        queryset.select_related("environment__project", "database", "schedule")
        .defer("database__password")
        .prefetch_related(Prefetch("copies", queryset=copies))
        .order_by("-created_at", "-id")
    )


def backup_get(*, organisation: Organisation, backup_id) -> Backup:
    pk = parse_uuid(backup_id)
    backup = (
        backups_for_organisation(organisation=organisation).filter(pk=pk).first()
        if pk is not None
        else None
    )
    if backup is None:
        raise NotFound(f"Backup {backup_id} not found.")
    return backup


def _by_reference(queryset: QuerySet, reference, *, slugs: bool):
    """One object by UUID, or by slug when the caller allows slugs."""
    pk = parse_uuid(reference)
    if pk is not None:
        return queryset.filter(pk=pk).first()
    if slugs and reference:
        return queryset.filter(slug=str(reference)).first()
    return None


def project_get(*, organisation: Organisation, reference, slugs: bool = True) -> Project:
    project = _by_reference(
        Project.objects.filter(organisation=organisation), reference, slugs=slugs
    )
    if project is None:
        raise NotFound(f"Project {reference} not found.")
    return project


def environment_get(
    *,
    organisation: Organisation,
    reference,
    project: Project | str | None = None,
    slugs: bool = False,
) -> Environment:
    """An environment by UUID, or by slug inside ``project`` (a Project, or its UUID or slug).

    Environment slugs are unique per project only, so a slug needs the project.
    """
    queryset = Environment.objects.filter(project__organisation=organisation).select_related(
        "project__organisation"
    )
    if project is not None:
        if isinstance(project, Project):
            queryset = queryset.filter(project=project)
        else:
            project_pk = parse_uuid(project)
            queryset = (
                queryset.filter(project_id=project_pk)
                if project_pk is not None
                else queryset.filter(project__slug=str(project))
            )
    environment = _by_reference(queryset, reference, slugs=slugs or project is not None)
    if environment is None:
        raise NotFound(f"Environment {reference} not found.")
    return environment


def database_get(
    *, organisation: Organisation, reference, environment: Environment | None = None
) -> Database:
    """A database by UUID, or by slug inside ``environment``."""
    queryset = Database.objects.filter(
        environment__project__organisation=organisation
    ).select_related("environment__project")
    if environment is not None:
        queryset = queryset.filter(environment=environment)
    database = _by_reference(queryset, reference, slugs=environment is not None)
    if database is None:
        raise NotFound(f"Database {reference} not found.")
    return database


def destination_get(*, organisation: Organisation, reference) -> Destination:
    """A destination by UUID (destinations have no slug)."""
    destination = _by_reference(
        Destination.objects.filter(organisation=organisation), reference, slugs=False
    )
    if destination is None:
        raise NotFound(f"Backup destination {reference} not found.")
    return destination


def destinations_with_usage(*, organisation: Organisation) -> QuerySet[Destination]:
    """The organisation's destinations with how many stored copies and bytes each holds."""
    stored = Q(copies__status=CopyStatus.STORED)
    return Destination.objects.filter(organisation=organisation).annotate(
        stored_copies=Count("copies", filter=stored),
        stored_bytes=Sum("copies__size", filter=stored),
    )


def backups_for_project(*, organisation: Organisation, project: Project) -> QuerySet[Backup]:
    return backups_for_organisation(organisation=organisation).filter(environment__project=project)


def _owned(organisation: Organisation, owner_organisation_id) -> QuerySet[Backup] | None:
    if owner_organisation_id != organisation.id:
        return Backup.objects.none()
    return None


def backups_for_environment(
    *, organisation: Organisation, environment: Environment
) -> QuerySet[Backup]:
    """The environment's backups. Filtered on the environment alone (its organisation is
    checked here) so the (environment, created_at, id) index serves the page by itself."""
    foreign = _owned(organisation, environment.project.organisation_id)
    if foreign is not None:
        return foreign
    return _with_relations(Backup.objects.filter(environment=environment))


def last_backup_by_environment(*, organisation: Organisation) -> dict:
    """Environment id -> its newest backup that is not being deleted, in one query."""
    last: dict = {}
    for backup in (
        Backup.objects.filter(organisation=organisation)
        .exclude(status__in=DELETION_STATUSES)
        .order_by("environment_id", "-created_at")
        .only("id", "environment_id", "status", "created_at", "completed_at", "name", "kind")
    ):
        last.setdefault(backup.environment_id, backup)
    return last


def stored_bytes_by_environment(*, organisation: Organisation) -> dict:
    """Environment id -> the bytes its stored copies take in every destination."""
    return dict(
        BackupCopy.objects.filter(backup__organisation=organisation, status=CopyStatus.STORED)
        .values_list("backup__environment_id")
        .annotate(total=Sum("size"))
    )


def backups_for_database(*, organisation: Organisation, database: Database) -> QuerySet[Backup]:
    """The database's backups, filtered on the database alone (see above)."""
    foreign = _owned(organisation, database.environment.project.organisation_id)
    if foreign is not None:
        return foreign
    return _with_relations(Backup.objects.filter(database=database))


def backups_for_destination(*, organisation: Organisation, destination: Destination) -> Listing:
    """Backups held in ``destination`` (one copy per destination, so no duplicates), newest
    first. A deleted copy, and a backup being deleted or deleted, are not held there (or
    soon not): they are left out.

    Ordered through the copies, which repeat their backup's created_at: a page deep in a
    large destination is a walk of the copies' partial (destination, backup_created_at,
    backup) index of held copies alone, where a join walked the backups and probed a copy
    for each skipped row. A deleted backup's copies are all deleted (``backup_delete_artifacts``
    marks them before the backup), so only the few backups still being deleted are left out
    by id. The rows stay scoped to the organisation.
    """
    being_deleted = Backup.objects.filter(
        organisation=organisation, status=BackupStatus.DELETING
    ).values("pk")
    copies = (
        BackupCopy.objects.filter(destination=destination)
        .held()
        .exclude(backup_id__in=being_deleted)
        .order_by("-backup_created_at", "-backup_id")
    )
    return Listing(
        rows=backups_for_organisation(organisation=organisation),
        keys=copies,
        created_at="backup_created_at",
        id="backup_id",
    )


def primary_copy(backup: Backup) -> BackupCopy | None:
    """The copy a single-location dialect shows: the first stored one, else the first one.

    Reads the prefetched copies, so it costs no query on a list page.
    """
    copies = list(backup.copies.all())
    for copy in copies:
        if copy.status == "stored":
            return copy
    return copies[0] if copies else None


def age_settings_of(organisation) -> dict:
    """What the encryption settings show: the organisation's recipients, the
    installation's, whether an identity is held (never the identity itself) and what new
    backups get."""
    keys = AgeKeys.objects.filter(organisation=organisation).first()
    identity = parse_identities(keys.identity) if keys and keys.identity else []
    encryption = artifact_encryption(organisation)
    return {
        "organisation": organisation,
        "recipients": list(keys.recipients) if keys else [],
        "installation_recipients": configured_age_recipients(),
        "identity_configured": bool(identity),
        "identity_recipients": [i.recipient for i in identity],
        "identity_file_configured": bool(settings.STRONGBOX_AGE_IDENTITY_FILE),
        "encryption": encryption.encryption,
        "key_id": encryption.key_id,
        "updated_at": keys.updated_at if keys else None,
    }


# --- health of one database, and of every database at once --------------------------------

FAILURE_STATUSES = (BackupStatus.FAILED, BackupStatus.ABORTED, BackupStatus.NOT_SUPPORTED)
HEALTH_KINDS = (BackupKind.DATABASE, BackupKind.BASE)


def backup_outcome(backup: Backup) -> str:
    """``ok``, ``failed``, ``running`` or ``other``: what a strip or a state shows of a run.
    A backup deleted since (retention) succeeded when it was taken: it has a checksum."""
    if backup.status == BackupStatus.COMPLETED:
        return "ok"
    if backup.status in FAILURE_STATUSES:
        return "failed"
    if backup.is_active:
        return "running"
    if backup.status in DELETION_STATUSES and backup.checksum_sha256:
        return "ok"
    return "other"


def _succeeded() -> Q:
    return Q(status=BackupStatus.COMPLETED) | (
        Q(status__in=DELETION_STATUSES) & ~Q(checksum_sha256="")
    )


@dataclass
class SuccessRate:
    succeeded: int
    failed: int

    @property
    def percent(self) -> float | None:
        total = self.succeeded + self.failed
        return None if not total else round(100.0 * self.succeeded / total, 1)


@dataclass
class DatabaseHealth:
    """What the database page shows of its backups (oldest first where a list)."""

    runs: list[Backup]
    rate_7: SuccessRate
    rate_30: SuccessRate
    last_good: Backup | None
    # (created_at, size in bytes, duration in seconds, name) of completed backups.
    series: list[tuple[datetime, int, float | None, str]]


def database_health(
    *, organisation: Organisation, database: Database, now: datetime, runs: int = 30, points=60
) -> DatabaseHealth:
    """Five queries on the (database, created_at) index, however long the history."""
    backups = backups_for_database(organisation=organisation, database=database).filter(
        kind__in=HEALTH_KINDS
    )
    counts = backups.filter(created_at__gte=now - timedelta(days=30)).aggregate(
        ok_30=Count("pk", filter=_succeeded()),
        failed_30=Count("pk", filter=Q(status__in=FAILURE_STATUSES)),
        ok_7=Count("pk", filter=_succeeded() & Q(created_at__gte=now - timedelta(days=7))),
        failed_7=Count(
            "pk",
            filter=Q(status__in=FAILURE_STATUSES) & Q(created_at__gte=now - timedelta(days=7)),
        ),
    )
    last_good = backups.filter(status=BackupStatus.COMPLETED).order_by("-created_at").first()
    completed = (
        Backup.objects.filter(
            database=database, kind__in=HEALTH_KINDS, status=BackupStatus.COMPLETED
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", "size", "started_at", "completed_at", "name")[:points]
    )
    series = [
        (
            created,
            size or 0,
            (finished - started).total_seconds() if started and finished else None,
            name,
        )
        for created, size, started, finished, name in reversed(list(completed))
    ]
    recent = list(
        Backup.objects.filter(database=database, kind__in=HEALTH_KINDS)
        .order_by("-created_at", "-id")
        .only("id", "name", "status", "created_at", "completed_at", "checksum_sha256", "message")[
            :runs
        ]
    )
    return DatabaseHealth(
        runs=list(reversed(recent)),
        rate_7=SuccessRate(counts["ok_7"], counts["failed_7"]),
        rate_30=SuccessRate(counts["ok_30"], counts["failed_30"]),
        last_good=last_good,
        series=series,
    )


def last_backup_by_database(*, organisation: Organisation) -> dict:
    """Database id -> its newest backup that is not being deleted (None: never backed up).
    Two queries: each database's newest id through the (database, created_at) index, then
    those backups."""
    newest = (
        Backup.objects.filter(database=OuterRef("pk"), kind__in=HEALTH_KINDS)
        .exclude(status__in=DELETION_STATUSES)
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    pairs = list(
        Database.objects.filter(environment__project__organisation=organisation)
        .annotate(newest=Subquery(newest))
        .values_list("pk", "newest")
    )
    found = Backup.objects.only(
        "id", "name", "status", "created_at", "completed_at", "checksum_sha256", "database_id"
    ).in_bulk([backup_id for _, backup_id in pairs if backup_id])
    return {database_id: found.get(backup_id) for database_id, backup_id in pairs}
