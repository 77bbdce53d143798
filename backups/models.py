"""Backups and their stored copies."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from destinations.models import Destination
from organizations.fields import EncryptedTextField
from organizations.models import Database, Environment, Organisation


class BackupStatus(models.TextChoices):
    """The canonical status vocabulary (seed 001), plus asynchronous deletion."""

    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Completed"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"
    FAILED = "failed", "Failed"
    NOT_SUPPORTED = "not-supported", "Not supported"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


ACTIVE_STATUSES = (BackupStatus.SCHEDULED, BackupStatus.IN_PROGRESS, BackupStatus.ABORTING)
# Being removed from its destinations, or removed: the row stays for audit.
DELETION_STATUSES = (BackupStatus.DELETING, BackupStatus.DELETED)
FINAL_STATUSES = (
    BackupStatus.COMPLETED,
    BackupStatus.ABORTED,
    BackupStatus.FAILED,
    BackupStatus.NOT_SUPPORTED,
    BackupStatus.DELETED,
)


class BackupKind(models.TextChoices):
    DATABASE = "database", "Database"
    FILESYSTEM = "filesystem", "Files"
    FULL = "full", "Full (databases and files)"
    BASE = "base", "PostgreSQL base backup"


class BackupMethod(models.TextChoices):
    LOGICAL = "logical", "Logical dump"
    PHYSICAL = "physical", "Physical base backup"
    ARCHIVE = "archive", "Files archive"


class BackupTrigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULED = "scheduled", "Scheduled"
    SAFETY = "safety", "Safety backup before a restore"


class Phase(models.TextChoices):
    DUMP = "DUMP"
    COMPRESS = "COMPRESS"
    UPLOAD = "UPLOAD"
    VERIFY = "VERIFY"


class Encryption(models.TextChoices):
    """How an artifact is encrypted (``key_id`` says with what)."""

    NONE = "none", "none"
    AES_256_GCM = "aes-256-gcm", "AES-256-GCM (Strongbox envelope)"
    AGE = "age", "age (X25519 recipients)"


class BackupQuerySet(models.QuerySet):
    """Questions other apps ask of an object's backups through its reverse relation
    (``environment.backups.live()``), so they need not import this app."""

    def live(self):
        """Not deleted: their artifacts are still stored."""
        return self.exclude(status=BackupStatus.DELETED)

    def active(self):
        """Scheduled, running or aborting."""
        return self.filter(status__in=ACTIVE_STATUSES)


class Backup(models.Model):
    """One backup of a database, of an environment's files, or of both (``full``).

    Progress (phase, bytes, estimate) is persisted on the row so any process (an
    SSE stream, a page) can follow it. ``heartbeat_at`` is refreshed by the worker
    while it runs; a stale heartbeat means the worker died.
    """

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Denormalised from the environment so tenancy filters and organisation-wide
    # lists need no joins.
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="backups")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="backups")
    database = models.ForeignKey(
        Database, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    name = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=20, choices=BackupKind.choices)
    method = models.CharField(max_length=20, choices=BackupMethod.choices)
    engine = models.CharField(max_length=20, blank=True)
    # Unbounded: a full backup lists "slug:version" for every database of its environment.
    engine_version = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=BackupStatus.choices, default=BackupStatus.SCHEDULED
    )
    trigger = models.CharField(
        max_length=20, choices=BackupTrigger.choices, default=BackupTrigger.MANUAL
    )
    schedule = models.ForeignKey(
        "schedules.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backups",
    )
    # The interval rules (seed 001) that produced this backup, as they were then.
    schedule_rules = models.JSONField(default=list, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    destinations = models.ManyToManyField(Destination, related_name="+", blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=64, blank=True)

    compression = models.CharField(max_length=10, blank=True)
    encrypted = models.BooleanField(default=False)
    encryption = models.CharField(
        max_length=20, choices=Encryption.choices, default=Encryption.NONE
    )
    # AES: the key's id (backups.keys); age: "age:" and its recipients' fingerprints.
    key_id = models.CharField(max_length=1000, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    checksum_sha256 = models.CharField(max_length=64, blank=True)
    row_counts = models.JSONField(default=dict, blank=True)
    # PostgreSQL: per table {"rows", "sha256", "columns", "encoding"} read from the dump stream
    # (backups.pgdump_stream); "sha256" left out where it cannot be taken again. Drills
    # hash the restored tables the same way and compare.
    table_checksums = models.JSONField(default=dict, blank=True)
    # What its series' history finds unusual about it (backups/anomaly.py): a list of
    # {measure, table, value, median, message}; empty when nothing was found.
    anomalies = models.JSONField(default=list, blank=True)

    phase = models.CharField(max_length=20, blank=True)
    phases = models.JSONField(default=list, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by_restore_at = models.DateTimeField(null=True, blank=True)
    verification_message = models.TextField(blank=True)

    objects = BackupQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list indexes carry the commonly filtered columns (INCLUDE, PostgreSQL
            # only) so a filtered page is an index-only scan; without them the planner
            # may walk the lone created_at index through rows of other owners.
            models.Index(
                fields=["environment", "-created_at", "-id"],
                include=["organisation", "kind", "status"],
                name="backup_env_created_cov",
            ),
            models.Index(
                fields=["organisation", "-created_at", "-id"],
                include=["kind", "status", "engine", "database"],
                name="backup_org_created_cov",
            ),
            models.Index(
                fields=["database", "-created_at", "-id"],
                include=["organisation", "kind", "status"],
                name="backup_db_created_cov",
            ),
            models.Index(fields=["status"], name="backup_status"),
        ]
        constraints = [
            # At most one running backup per database, enforced by the database itself.
            models.UniqueConstraint(
                fields=["database"],
                condition=models.Q(status__in=["scheduled", "in-progress", "aborting"]),
                name="one_active_backup_per_database",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def locked_until(self):
        """The latest object lock date of its held copies (None: unlocked); reads the
        prefetched copies when the selectors prefetched them."""
        dates = [
            c.locked_until
            for c in self.copies.all()
            if c.locked_until is not None and c.status != CopyStatus.DELETED
        ]
        return max(dates, default=None)

    @property
    def percent(self) -> float | None:
        if self.status == BackupStatus.COMPLETED:
            return 100.0
        if not self.bytes_total:
            return None
        return min(99.0, round(100.0 * self.bytes_done / self.bytes_total, 1))


class CopyStatus(models.TextChoices):
    UPLOADING = "uploading", "Uploading"
    STORED = "stored", "Stored"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


class BackupCopyQuerySet(models.QuerySet):
    def held(self):
        """Copies whose artifact is (or may still be) in the destination."""
        return self.exclude(status=CopyStatus.DELETED)

    def locked(self, now):
        """Held copies whose artifact a store refuses to delete before their date."""
        return self.held().filter(locked_until__gt=now)


class BackupCopy(models.Model):
    """One copy of a backup's artifact in one destination.

    ``backup_created_at`` repeats the backup's ``created_at`` (which never changes) so a
    destination's backups can be paged on this table's own index, without a join per row.
    ``save()`` fills it, so every ORM creator sets it; raw SQL and ``bulk_create`` must.
    """

    organisation_lookup = "backup__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="copies")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="copies")
    key = models.CharField(max_length=1000)
    status = models.CharField(
        max_length=20, choices=CopyStatus.choices, default=CopyStatus.UPLOADING
    )
    size = models.BigIntegerField(null=True, blank=True)
    checksum_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    file_exists = models.BooleanField(default=False)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    # The stored artifact's S3 Object Lock retain-until date, as last set: retention and
    # the pages read it here rather than ask S3 per backup. Indexed for "locked now".
    locked_until = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    backup_created_at = models.DateTimeField(editable=False)

    objects = BackupCopyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "backup copies"
        ordering = ["created_at"]
        indexes = [
            # A destination's backups newest first, in the backups' own (created_at, id)
            # order: a deep page is an index-only walk of this table. Partial: the list
            # leaves deleted copies out, and skipping them must not cost a row visit each.
            models.Index(
                fields=["destination", "-backup_created_at", "-backup"],
                condition=~models.Q(status="deleted"),
                name="copy_dest_held_created",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["backup", "destination"], name="one_copy_per_destination"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backup.name} @ {self.destination.name}"

    def save(self, *args, **kwargs):
        if self.backup_created_at is None:
            self.backup_created_at = self.backup.created_at
        super().save(*args, **kwargs)


# --- point-in-time recovery (PostgreSQL) ---------------------------------------------------


class WalKind(models.TextChoices):
    SEGMENT = "segment", "WAL segment"
    HISTORY = "history", "Timeline history file"
    BACKUP = "backup", "Backup history file"
    PARTIAL = "partial", "Partial segment (end of a timeline)"


class WalSegment(models.Model):
    """One file PostgreSQL's ``archive_command`` handed to Strongbox, stored in every destination.

    ``checksum_sha256`` is of the file as PostgreSQL wrote it (what makes a second archive of
    the same name harmless or a conflict); ``artifact_sha256`` is of the stored artifact (what
    a verify re-reads). ``base_backup`` is the latest base backup this WAL replays onto.
    The first and last transaction times come from ``pg_waldump``; they bound what a
    ``recovery_target_time`` inside this segment can reach.
    """

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="wal_segments"
    )
    # Deleting the database or environment leaves the rows behind without them, so that
    # housekeeping can delete their files (``wal_purge_orphans``) instead of leaking them.
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="wal_segments"
    )
    database = models.ForeignKey(
        Database, null=True, blank=True, on_delete=models.SET_NULL, related_name="wal_segments"
    )
    base_backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="wal_segments"
    )
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=WalKind.choices, default=WalKind.SEGMENT)
    timeline = models.PositiveIntegerField()
    # Position in the WAL sequence (log * segments-per-log + segment); null for history files.
    segment_number = models.BigIntegerField(null=True, blank=True)
    size = models.BigIntegerField()
    stored_size = models.BigIntegerField()
    checksum_sha256 = models.CharField(max_length=64)
    artifact_sha256 = models.CharField(max_length=64)
    key = models.CharField(max_length=1000)
    compression = models.CharField(max_length=10, blank=True)
    encrypted = models.BooleanField(default=False)
    key_id = models.CharField(max_length=200, blank=True)
    destinations = models.ManyToManyField(Destination, related_name="+", blank=True)
    first_xact_at = models.DateTimeField(null=True, blank=True)
    last_xact_at = models.DateTimeField(null=True, blank=True)
    stored_at = models.DateTimeField(default=timezone.now, db_index=True)
    # What ``pitr.verify`` found: when a listing last saw it in every destination with its
    # stored size, when a full re-read last matched ``artifact_sha256`` (the rolling re-read
    # takes the least recently verified first, so this is where it got to), and what is
    # wrong (per destination) when something is. ``lost``: no destination holds an intact
    # copy, so coverage treats the segment as never archived.
    checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True)
    lost = models.BooleanField(default=False)

    class Meta:
        ordering = ["database", "timeline", "segment_number", "name"]
        indexes = [
            models.Index(
                fields=["database", "timeline", "segment_number"], name="wal_db_tli_segno"
            ),
            models.Index(fields=["environment", "-stored_at"], name="wal_env_stored"),
            models.Index(fields=["database", "verified_at"], name="wal_db_verified"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["database", "name"], name="one_wal_file_per_name"),
        ]

    def __str__(self) -> str:
        return self.name


class WalArchiver(models.Model):
    """The archiving state of one database, like ``pg_stat_archiver`` but on our side.

    One row per database, updated by every ``archive_wal`` run: the last success, the last
    failure and how many failures in a row, so coverage and alerts need no log scan.
    """

    organisation_lookup = "database__environment__project__organisation"

    database = models.OneToOneField(
        Database, primary_key=True, on_delete=models.CASCADE, related_name="wal_archiver"
    )
    last_archived_wal = models.CharField(max_length=64, blank=True)
    last_archived_at = models.DateTimeField(null=True, blank=True)
    last_failed_wal = models.CharField(max_length=64, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failed_count = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    archived_count = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"WAL archiving of {self.database}"


class BaseBackupPosition(models.Model):
    """Where in the WAL a physical base backup starts and stops.

    The start comes from the ``backup_label`` inside the backup itself; the stop from the
    backup history file (``*.backup``) PostgreSQL archives when the backup ends. Recovery
    from this base needs every WAL segment from ``start_segment_number`` on.
    """

    organisation_lookup = "backup__organisation"

    backup = models.OneToOneField(
        Backup, primary_key=True, on_delete=models.CASCADE, related_name="base_position"
    )
    timeline = models.PositiveIntegerField()
    start_lsn = models.CharField(max_length=20)
    start_wal = models.CharField(max_length=64)
    start_segment_number = models.BigIntegerField()
    start_time = models.DateTimeField(null=True, blank=True)
    stop_lsn = models.CharField(max_length=20, blank=True)
    stop_wal = models.CharField(max_length=64, blank=True)
    stop_time = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.backup.name} from {self.start_lsn}"


class AgeKeys(models.Model):
    """An organisation's age recipients (public keys new backups are encrypted to, beside
    STRONGBOX_AGE_RECIPIENTS) and, optionally, the identity its restores decrypt with,
    stored encrypted like every other secret. Without a row the organisation has neither."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="age_keys"
    )
    recipients = models.JSONField(default=list, blank=True)  # ["age1…", …], in order
    identity = EncryptedTextField(blank=True)  # AGE-SECRET-KEY-1… lines
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "age keys"
        verbose_name_plural = "age keys"

    def __str__(self) -> str:
        return f"age keys of {self.organisation}"
