"""Tenancy: organisations, who belongs to them, and what they own."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from organizations.fields import EncryptedTextField


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def role_at_least(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[needed]


class Organisation(models.Model):
    """A tenant. Everything else belongs to exactly one organisation."""

    organisation_lookup = "id"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    # Members acting in this organisation must have signed in with a TOTP code
    # (organizations/two_factor.py); set by its admins, not by each member.
    require_two_factor = models.BooleanField(
        default=False,
        help_text="Members must sign in with a one-time code to act in this organisation.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipSource(models.TextChoices):
    """Who made a membership: single sign-on keeps only its own in step with the claims."""

    MANUAL = "manual", "Added by hand"
    SSO = "sso", "Single sign-on"


class Membership(models.Model):
    """A user's role in one organisation."""

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    # Each sign-in through the OpenID provider changes or removes the memberships it made
    # (``sso``); memberships added by hand are never touched by it.
    source = models.CharField(
        max_length=10, choices=MembershipSource.choices, default=MembershipSource.MANUAL
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="unique_membership"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.role})"


class SsoIdentity(models.Model):
    """The OpenID provider's account (issuer and ``sub``) that a user signs in as.

    Users are found by this pair, never by e-mail address or username, so an account at the
    provider cannot take over a local account that happens to share its address or name."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="unique_sso_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


TOKEN_PREFIX = "sbx_"  # noqa: S105 - a public marker, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """An organisation API token. Only its SHA-256 is stored; the token is shown once."""

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters stay visible so a person can tell tokens apart.
    token_prefix = models.CharField(max_length=16, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Project(models.Model):
    """A project (seed 000's "application") of an organisation."""

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "slug"], name="unique_project_slug"),
        ]

    def __str__(self) -> str:
        return self.name


class Environment(models.Model):
    """A deployment of a project (production, staging…), owning databases and files."""

    organisation_lookup = "project__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    files_path = models.CharField(
        max_length=1000, blank=True, help_text="Directory whose files are backed up, if any."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["project__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="unique_environment_slug"),
        ]

    def __str__(self) -> str:
        return f"{self.project.name} / {self.name}"

    @property
    def organisation(self) -> Organisation:
        return self.project.organisation


class Engine(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL"
    MARIADB = "mariadb", "MariaDB"
    SQLITE = "sqlite", "SQLite"
    MONGODB = "mongodb", "MongoDB"


class Database(models.Model):
    """A database inside an environment that Strongbox backs up (seed 001's "addon")."""

    organisation_lookup = "environment__project__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="databases")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    engine = models.CharField(max_length=20, choices=Engine.choices)
    version = models.CharField(max_length=50, blank=True, help_text="Last seen server version.")
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True)
    database_name = models.CharField(
        max_length=1000, help_text="Database name on the server, or the file path for SQLite."
    )
    options = models.JSONField(default=dict, blank=True)
    # Anomaly alerts (backups/anomaly.py): off, or this database's own thresholds; null
    # takes the installation's default (STRONGBOX_ANOMALY_*).
    anomaly_checks = models.BooleanField(
        default=True, help_text="Compare each completed backup with its recent history."
    )
    anomaly_drop_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="A size or row count below this % of the median.",
    )
    anomaly_jump_percent = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(101), MaxValueValidator(100000)],
        help_text="A size or row count above this % of the median.",
    )
    anomaly_min_rows = models.PositiveIntegerField(
        null=True, blank=True, help_text="Row count changes smaller than this are not judged."
    )
    anomaly_compression_drop_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="A compression ratio below this % of the median.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "slug"], name="unique_database_slug"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_engine_display()})"

    @property
    def organisation(self) -> Organisation:
        return self.environment.project.organisation


class HostPolicy(models.Model):
    """The hosts an organisation's database servers, S3 endpoints and webhooks may reach.

    Set by the server operator (Django admin for superusers, ``manage.py host_policy``),
    never by the tenant. No entries: the server's default (``STRONGBOX_DEFAULT_ALLOWED_HOSTS``)
    applies. Entry syntax and matching: ``organizations/hostpolicy.py``.
    """

    organisation_lookup = "organisation"

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="host_policy"
    )
    allowed_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text="Networks (10.0.0.0/8), host names (db.example.com), wildcards "
        "(*.example.com) or * for any host.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "host policies"

    def __str__(self) -> str:
        return f"Host policy of {self.organisation}: {', '.join(self.allowed_hosts) or 'default'}"


class PathGrant(models.Model):
    """A server directory the operator grants one organisation, besides its own root under
    ``STRONGBOX_TENANT_ROOT``. Set by the operator (Django admin for superusers,
    ``manage.py grant_path``), never by the tenant; rules in ``organizations/validators.py``:
    no grant overlaps another organisation's root or grant, nor the app's own data."""

    organisation_lookup = "organisation"

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="path_grants"
    )
    path = models.CharField(max_length=1000, help_text="An absolute directory on the server.")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organisation__name", "path"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "path"], name="unique_path_grant"),
        ]

    def __str__(self) -> str:
        return f"{self.path} for {self.organisation}"
