"""Writes to the tenancy model: API tokens, members, projects, environments and databases.

Every interface (the API, the pages, the admin, management commands) creates, changes and
deletes projects, environments, databases and memberships through these functions, so the
rules live here once: names and slugs of a valid shape and length, a known engine, a port
from 1 to 65535 (a serializer or a form may check these early; these always do), a slug
unique among its siblings (derived from the name when left out), server paths inside the
organisation's own roots and out of the app's data (``validators.require_path``) and not
named like a restore's own copies (``validators.reserved_name_problem``), and
nothing that still has backups is deleted. Stored secrets are re-encrypted under the
newest key by ``secrets_rotate`` (``manage.py rotate_keys``). A problem is an ``InvalidInput`` whose
``fields`` name the model field at fault (``files_path``, ``database_name``…); each
interface renames them to its own vocabulary.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Field, Model, QuerySet, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.text import slugify

from audit.services import AuditObject, audit_record, changes
from config.errors import ApplicationError, Conflict, InvalidInput, NotFound
from config.keyring import configured_fingerprints
from organizations.fields import (
    EncryptedJSONField,
    EncryptedTextField,
    encrypt_text,
    field_cipher,
    is_encrypted,
    newest_field_key,
    token_of,
    value_of,
)
from organizations.hostpolicy import host_problem, parse_rules
from organizations.models import (
    ROLE_RANK,
    ApiToken,
    Database,
    Engine,
    Environment,
    HostPolicy,
    Membership,
    Organisation,
    PathGrant,
    Project,
    Role,
    hash_token,
)
from organizations.validators import (
    PathNotAllowed,
    grant_problem,
    require_database_values,
    require_path,
    reserved_name_problem,
)

# --- API tokens -----------------------------------------------------------------------------


def api_token_create(
    *, organisation: Organisation, name: str, role: str, created_by=None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value, which is never stored."""
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        organisation=organisation,
        name=name,
        role=role,
        token_hash=hash_token(raw),
        token_prefix=raw[:12],
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    audit_record(
        organisation=organisation,
        action="token.create",
        obj=token,
        details={"role": role, "token_prefix": token.token_prefix},
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(
            organisation=token.organisation_id,
            action="token.revoke",
            obj=token,
            details={"role": token.role, "token_prefix": token.token_prefix},
        )


# --- memberships (the admin's) ----------------------------------------------------------


def _membership_object(membership: Membership) -> AuditObject:
    return AuditObject("membership", str(membership.pk), membership.user.get_username())


@transaction.atomic
def membership_save(*, membership: Membership) -> Membership:
    """Save a new or changed membership; recorded as ``membership.create``, or as
    ``membership.change`` with the role (or organisation) before and after."""
    before = (
        None
        if membership._state.adding
        else Membership.objects.filter(pk=membership.pk)
        .values("role", "organisation_id", "user_id")
        .first()
    )
    membership.save()
    after = {
        "role": membership.role,
        "organisation_id": membership.organisation_id,
        "user_id": membership.user_id,
    }
    if before is None:
        audit_record(
            organisation=membership.organisation_id,
            action="membership.create",
            obj=_membership_object(membership),
            details={"role": membership.role},
        )
    elif before != after:
        audit_record(
            organisation=membership.organisation_id,
            action="membership.change",
            obj=_membership_object(membership),
            details=changes(before, after),
        )
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership) -> None:
    audit_record(
        organisation=membership.organisation_id,
        action="membership.delete",
        obj=_membership_object(membership),
        details={"role": membership.role},
    )
    membership.delete()


# --- members ----------------------------------------------------------------------------------

LAST_ADMIN = "An organisation keeps at least one admin; make someone else admin first."


def _check_role(role: str) -> None:
    if role not in ROLE_RANK:
        raise _invalid("role", f"{role!r} is not a valid choice; one of {', '.join(Role.values)}.")


def membership_add(*, organisation: Organisation, user_reference: str, role: str) -> Membership:
    """Make an existing user (named by username or email) a member with ``role``."""
    _check_role(role)
    users = get_user_model().objects.filter(is_active=True)
    reference = user_reference.strip()
    user = users.filter(username=reference).first() or (
        users.filter(email__iexact=reference).first() if "@" in reference else None
    )
    if user is None:
        raise _invalid("user", f"No active user is called {reference!r}.")
    if Membership.objects.filter(organisation=organisation, user=user).exists():
        raise _invalid("user", f"{user.get_username()} is already a member.")
    return Membership.objects.create(organisation=organisation, user=user, role=role)


def _admins_left_without(membership: Membership) -> int:
    return (
        Membership.objects.filter(organisation_id=membership.organisation_id, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .count()
    )


def membership_set_role(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; the organisation's last admin stays admin."""
    _check_role(role)
    with transaction.atomic():
        # Lock the organisation's admins, so two demotions at once cannot leave none.
        list(
            Membership.objects.select_for_update().filter(
                organisation_id=membership.organisation_id, role=Role.ADMIN
            )
        )
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            if not _admins_left_without(membership):
                raise Conflict(LAST_ADMIN)
        Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return membership


def membership_remove(*, membership: Membership) -> None:
    """Remove a member (their API tokens stay: tokens belong to the organisation)."""
    with transaction.atomic():
        list(
            Membership.objects.select_for_update().filter(
                organisation_id=membership.organisation_id, role=Role.ADMIN
            )
        )
        if membership.role == Role.ADMIN and not _admins_left_without(membership):
            raise Conflict(LAST_ADMIN)
        membership.delete()


# --- shared rules ---------------------------------------------------------------------------


class _Keep(enum.Enum):
    """Default of an update argument for which ``None`` is a real value (a database port)."""

    KEEP = "keep"


KEEP = _Keep.KEEP

SLUG_IN_USE = "This slug is already in use."


def _check_slug_free(siblings: QuerySet, slug: str) -> None:
    _check_slug_shape(slug)
    if siblings.filter(slug=slug).exists():
        raise InvalidInput(SLUG_IN_USE, fields={"slug": [SLUG_IN_USE]})


# The shape rules every interface shares (the API's serializers, the pages' forms and the
# admin all end here): a form or a serializer may check them early, the service always does.
NAME_MAX = 200
SLUG_MAX = 100
FIELD_MAX = {"host": 255, "username": 200, "database_name": 1000, "files_path": 1000}
_SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")


def _invalid(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field}: {problem}", fields={field: [problem]})


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise _invalid("name", "This field may not be blank.")
    if len(name) > NAME_MAX:
        raise _invalid("name", f"Ensure this field has no more than {NAME_MAX} characters.")


def _check_slug_shape(slug: str) -> None:
    if not _SLUG_RE.match(slug or ""):
        raise _invalid("slug", "Enter a valid slug: letters, numbers, underscores or hyphens.")
    if len(slug) > SLUG_MAX:
        raise _invalid("slug", f"Ensure this field has no more than {SLUG_MAX} characters.")


def _check_lengths(**values: str | None) -> None:
    for field, value in values.items():
        if value is not None and len(value) > FIELD_MAX[field]:
            raise _invalid(
                field, f"Ensure this field has no more than {FIELD_MAX[field]} characters."
            )


def _check_engine(engine: str) -> None:
    if engine not in Engine.values:
        raise _invalid(
            "engine", f"{engine!r} is not a valid choice; one of {', '.join(Engine.values)}."
        )


def _check_port(port: int | None) -> None:
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise _invalid("port", "A port is a whole number from 1 to 65535.")


def _free_slug(siblings: QuerySet, name: str) -> str:
    """The name's slug, with ``-2``, ``-3``… appended until no sibling uses it."""
    base = slugify(name)[:90] or "item"
    slug, n = base, 2
    while siblings.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _slug_for(siblings: QuerySet, slug: str | None, name: str) -> str:
    """The slug of a new object: the one asked for if no sibling has it, else derived."""
    if slug is None:
        return _free_slug(siblings, name)
    _check_slug_free(siblings, slug)
    return slug


def check_server_path(organisation: Organisation, field: str, value: str) -> None:
    """PathNotAllowed naming ``field`` when ``value`` is set and ``organisation`` may not use
    it (outside its roots, app data, or named like a restore's copies)."""
    require_path(organisation, field, value)


def _save(obj: Model, siblings: QuerySet, *, creating: bool) -> None:
    """Save ``obj``; a sibling that took its slug meanwhile is the same 400 as one before."""
    try:
        with transaction.atomic():
            obj.save(force_insert=creating)
    except IntegrityError:
        if siblings.filter(slug=obj.slug).exists():
            raise InvalidInput(SLUG_IN_USE, fields={"slug": [SLUG_IN_USE]}) from None
        raise


def environments_lock(environments: QuerySet) -> list[Environment]:
    """Lock environment rows until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway). Creating a backup and deleting its environment, project or database
    both take this lock first, so a delete never misses a backup requested meanwhile."""
    return list(environments.select_for_update().order_by("pk"))


def environment_lock(*, environment: Environment) -> None:
    """``environments_lock`` for one environment; NotFound when it was deleted meanwhile."""
    if not environments_lock(Environment.objects.filter(pk=environment.pk)):
        raise NotFound(f"Environment {environment} no longer exists.")


def _refuse_if_backups(backups: QuerySet, what: str) -> None:
    """Deleting the rows would orphan stored artifacts: make people delete backups first."""
    live = backups.live().count()
    if live:
        raise Conflict(
            f"This {what} still has {live} backup(s); delete them first so their "
            "artifacts are removed from the destinations."
        )


# --- projects -------------------------------------------------------------------------------


def project_create(*, organisation: Organisation, name: str, slug: str | None = None) -> Project:
    """A project of ``organisation``; without a slug, one is derived from the name."""
    _check_name(name)
    siblings = Project.objects.filter(organisation=organisation)
    slug = _slug_for(siblings, slug, name)
    project = Project(organisation=organisation, name=name, slug=slug)
    _save(project, siblings, creating=True)
    return project


def project_update(
    *, project: Project, name: str | None = None, slug: str | None = None
) -> Project:
    """Rename a project or change its slug (arguments left out keep their value)."""
    siblings = Project.objects.filter(organisation_id=project.organisation_id).exclude(
        pk=project.pk
    )
    if slug is not None:
        _check_slug_free(siblings, slug)
        project.slug = slug
    if name is not None:
        _check_name(name)
        project.name = name
    _save(project, siblings, creating=False)
    return project


def project_delete(*, project: Project) -> None:
    """Refused (409) while any of its environments still has backups."""
    with transaction.atomic():
        environments_lock(Environment.objects.filter(project=project))
        backups = project.organisation.backups.filter(environment__project=project)
        _refuse_if_backups(backups, "project")
        project.delete()


# --- environments ---------------------------------------------------------------------------


def environment_create(
    *, project: Project, name: str, slug: str | None = None, files_path: str = ""
) -> Environment:
    """An environment of ``project``; ``files_path`` must be a directory of its organisation."""
    _check_name(name)
    _check_lengths(files_path=files_path)
    check_server_path(project.organisation, "files_path", files_path)
    siblings = Environment.objects.filter(project=project)
    slug = _slug_for(siblings, slug, name)
    environment = Environment(project=project, name=name, slug=slug, files_path=files_path)
    _save(environment, siblings, creating=True)
    return environment


def environment_update(
    *,
    environment: Environment,
    name: str | None = None,
    slug: str | None = None,
    files_path: str | None = None,
) -> Environment:
    """Change an environment (arguments left out keep their value; ``files_path=""``
    removes the files directory)."""
    if name is not None:
        _check_name(name)
    _check_lengths(files_path=files_path)
    if files_path is not None:
        check_server_path(environment.organisation, "files_path", files_path)
        environment.files_path = files_path
    siblings = Environment.objects.filter(project_id=environment.project_id).exclude(
        pk=environment.pk
    )
    if slug is not None:
        _check_slug_free(siblings, slug)
        environment.slug = slug
    if name is not None:
        environment.name = name
    _save(environment, siblings, creating=False)
    return environment


def environment_delete(*, environment: Environment) -> None:
    """Refused (409) while the environment still has backups."""
    with transaction.atomic():
        environment_lock(environment=environment)
        _refuse_if_backups(environment.backups.all(), "environment")
        environment.delete()


# --- databases ------------------------------------------------------------------------------


def check_database_path(
    organisation: Organisation, engine: str, database_name: str, options: dict | None = None
) -> None:
    """A SQLite "database name" is a file the workers read and replace, and libpq's sslcert,
    sslkey and sslrootcert are files they read: paths of the organisation only."""
    require_database_values(organisation, engine, database_name, options)
    if engine != Engine.SQLITE and (problem := reserved_name_problem(database_name)):
        raise InvalidInput(problem, fields={"database_name": [problem]})


NETWORK_ENGINES = (Engine.POSTGRESQL, Engine.MYSQL, Engine.MARIADB, Engine.MONGODB)


def check_database_host(organisation: Organisation, engine: str, host: str, port) -> None:
    """InvalidInput naming ``host`` when the organisation's host policy refuses it."""
    problem = engine in NETWORK_ENGINES and host_problem(organisation, host, port)
    if problem:
        raise InvalidInput(problem, fields={"host": [problem]})


def database_check(
    *,
    environment: Environment,
    name: str,
    engine: str,
    database_name: str,
    host: str = "",
    port: int | None = None,
    username: str = "",
    options: dict[str, Any] | None = None,
) -> None:
    """Every rule a new database's values must meet, without saving anything: what
    ``database_create`` checks first, and what a page's "Test connection" checks before it
    connects (slug uniqueness aside)."""
    _check_name(name)
    _check_engine(engine)
    _check_port(port)
    _check_lengths(host=host, username=username, database_name=database_name)
    if not database_name:
        raise _invalid("database_name", "This field may not be blank.")
    organisation = environment.project.organisation
    check_database_path(organisation, engine, database_name, options)
    check_database_host(organisation, engine, host, port)


def database_create(
    *,
    environment: Environment,
    name: str,
    engine: str,
    database_name: str,
    slug: str | None = None,
    host: str = "",
    port: int | None = None,
    username: str = "",
    password: str = "",
    options: dict[str, Any] | None = None,
    version: str = "",
    anomaly_checks: bool = True,
    anomaly_drop_percent: int | None = None,
    anomaly_jump_percent: int | None = None,
    anomaly_min_rows: int | None = None,
    anomaly_compression_drop_percent: int | None = None,
) -> Database:
    """A database of ``environment``. The password is stored encrypted (``EncryptedTextField``);
    for SQLite, ``database_name`` is a file path that must be allowed."""
    database_check(
        environment=environment,
        name=name,
        engine=engine,
        database_name=database_name,
        host=host,
        port=port,
        username=username,
        options=options,
    )
    siblings = Database.objects.filter(environment=environment)
    slug = _slug_for(siblings, slug, name)
    database = Database(
        environment=environment,
        name=name,
        slug=slug,
        engine=engine,
        version=version,
        host=host,
        port=port,
        username=username,
        password=password,
        database_name=database_name,
        options=options if options is not None else {},
        anomaly_checks=anomaly_checks,
        anomaly_drop_percent=anomaly_drop_percent,
        anomaly_jump_percent=anomaly_jump_percent,
        anomaly_min_rows=anomaly_min_rows,
        anomaly_compression_drop_percent=anomaly_compression_drop_percent,
    )
    _save(database, siblings, creating=True)
    return database


def database_update(
    *,
    database: Database,
    name: str | None = None,
    slug: str | None = None,
    engine: str | None = None,
    host: str | None = None,
    port: int | None | _Keep = KEEP,
    username: str | None = None,
    password: str | None = None,
    database_name: str | None = None,
    options: dict[str, Any] | None = None,
    anomaly_checks: bool | None = None,
    anomaly_drop_percent: int | None | _Keep = KEEP,
    anomaly_jump_percent: int | None | _Keep = KEEP,
    anomaly_min_rows: int | None | _Keep = KEEP,
    anomaly_compression_drop_percent: int | None | _Keep = KEEP,
) -> Database:
    """Change a database; arguments left out keep their value. ``port=None`` removes the
    port and ``password=""`` the password; an anomaly threshold given as None goes back to
    the default. The SQLite path rule is checked against the resulting engine and path,
    whatever changed."""
    siblings = Database.objects.filter(environment_id=database.environment_id).exclude(
        pk=database.pk
    )
    if slug is not None:
        _check_slug_free(siblings, slug)
    if name is not None:
        _check_name(name)
    if engine is not None:
        _check_engine(engine)
    if port is not KEEP:
        _check_port(port)
    _check_lengths(host=host, username=username, database_name=database_name)
    if database_name == "":
        raise _invalid("database_name", "This field may not be blank.")
    check_database_path(
        database.organisation,
        engine or database.engine,
        database_name or database.database_name,
        database.options if options is None else options,
    )
    if host is not None or engine is not None or port is not KEEP:
        check_database_host(
            database.organisation,
            engine or database.engine,
            database.host if host is None else host,
            database.port if port is KEEP else port,
        )
    changes = {
        "name": name,
        "slug": slug,
        "engine": engine,
        "host": host,
        "username": username,
        "password": password,
        "database_name": database_name,
        "options": options,
        "anomaly_checks": anomaly_checks,
    }
    for field, value in changes.items():
        if value is not None:
            setattr(database, field, value)
    if port is not KEEP:
        database.port = port
    thresholds = {
        "anomaly_drop_percent": anomaly_drop_percent,
        "anomaly_jump_percent": anomaly_jump_percent,
        "anomaly_min_rows": anomaly_min_rows,
        "anomaly_compression_drop_percent": anomaly_compression_drop_percent,
    }
    for field, value in thresholds.items():
        if value is not KEEP:
            setattr(database, field, value)
    _save(database, siblings, creating=False)
    return database


def database_delete(*, database: Database) -> None:
    """Refused (409) while a backup of it runs. Its finished backups stay (without it)."""
    with transaction.atomic():
        environments_lock(Environment.objects.filter(pk=database.environment_id))
        if database.backups.active().exists():
            raise Conflict("A backup of this database is running; wait for it or abort it.")
        database.delete()


# --- stored secrets -------------------------------------------------------------------------


class SecretsUnreadable(ApplicationError):
    status_code = 500
    code = "secrets_unreadable"


@dataclass
class SecretsRotation:
    """Stored secrets per encrypted column (``app.Model.field``) that ``secrets_rotate``
    found already under the newest key, and that it re-encrypted (or would, on a dry run)."""

    current: dict[str, int] = dataclasses.field(default_factory=dict)
    rotated: dict[str, int] = dataclasses.field(default_factory=dict)


def _encrypted_columns() -> list[tuple[type[Model], Field]]:
    return [
        (model, column)
        for model in apps.get_models()
        for column in model._meta.concrete_fields
        if isinstance(column, EncryptedTextField | EncryptedJSONField)
    ]


def _rotated_value(raw: str, *, newest: Fernet, cipher: MultiFernet) -> str | None:
    """The value to store instead of ``raw`` (None: it is current); InvalidToken if no key
    reads it."""
    if not is_encrypted(raw):  # stored before encryption at rest: encrypt it now
        return encrypt_text(raw)
    try:
        newest.decrypt(token_of(raw))
    except InvalidToken:
        return value_of(cipher.rotate(token_of(raw)))
    return None


def secrets_rotate(*, dry_run: bool = False) -> SecretsRotation:
    """Re-encrypt every stored secret (every Encrypted*Field of every model) under the
    newest key; values encrypted under an older master key, the local secrets key or the
    old SECRET_KEY fallback are rotated with ``MultiFernet.rotate``.

    Idempotent: a value already under the newest key is not rewritten. All or nothing: when
    a value decrypts under none of the configured keys, it raises ``SecretsUnreadable``
    naming every such row, and nothing is changed.
    """
    newest, cipher = newest_field_key(), field_cipher()
    result = SecretsRotation()
    unreadable: list[str] = []
    with transaction.atomic():
        writes: list[tuple[type[Model], Field, Any, str]] = []
        for model, column in _encrypted_columns():
            label = f"{model._meta.label}.{column.name}"
            named = "name" in {f.name for f in model._meta.concrete_fields}
            rows = (
                model._default_manager.select_for_update()
                .annotate(raw_value=Cast(column.attname, TextField()))
                .values_list("pk", "raw_value", "name" if named else "pk")
                .order_by("pk")
            )
            result.current[label] = result.rotated[label] = 0
            for pk, raw, name in rows:
                if not raw:
                    continue
                try:
                    value = _rotated_value(raw, newest=newest, cipher=cipher)
                except InvalidToken:
                    unreadable.append(f"{label} of {model.__name__} {pk} ({name})")
                    continue
                if value is None:
                    result.current[label] += 1
                else:
                    result.rotated[label] += 1
                    writes.append((model, column, pk, value))
        if unreadable:
            raise SecretsUnreadable(
                f"{len(unreadable)} stored secret(s) decrypt under none of the configured keys "
                f"(master keys: {configured_fingerprints()}); nothing was changed. Add the "
                "missing key to STRONGBOX_MASTER_KEY and run again, or enter these secrets "
                "again: " + "; ".join(unreadable)
            )
        if not dry_run:
            for model, column, pk, value in writes:
                # A Value expression is stored as it is: the field would encrypt it again.
                model._default_manager.filter(pk=pk).update(
                    **{column.attname: Value(value, output_field=TextField())}
                )
            # The installation's, not one organisation's: the Django admin shows it.
            audit_record(
                organisation=None,
                action="keys.rotate",
                details={
                    "master_keys": configured_fingerprints(),
                    "rotated_count": sum(result.rotated.values()),
                    "current_count": sum(result.current.values()),
                },
            )
    return result


# --- host policies (set by the server operator, never by a tenant) ---------------------------


def host_policy_set(*, organisation: Organisation, allowed_hosts: list[str]) -> HostPolicy:
    """Replace the organisation's host policy; an empty list returns it to the server default.

    Entries are checked first (InvalidInput naming ``allowed_hosts``), so a typo never
    leaves a policy that refuses everything."""
    entries = list(dict.fromkeys(entry.strip() for entry in allowed_hosts if entry.strip()))
    try:
        parse_rules(entries)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"allowed_hosts": [str(exc)]}) from None
    before = HostPolicy.objects.filter(organisation=organisation).first()
    policy, _ = HostPolicy.objects.update_or_create(
        organisation=organisation, defaults={"allowed_hosts": entries}
    )
    audit_record(
        organisation=organisation,
        action="host_policy.set",
        obj=AuditObject("host_policy", str(policy.pk), organisation.name),
        details=changes(
            {"allowed_hosts": before.allowed_hosts if before else []}, {"allowed_hosts": entries}
        ),
    )
    return policy


# --- path grants (set by the server operator, never by a tenant) -----------------------------


def path_grant_create(
    *, organisation: Organisation, path: str, note: str = "", created_by=None
) -> PathGrant:
    """Grant ``organisation`` the directory ``path`` (stored resolved). Refused (naming
    ``path``) when it overlaps the tenant root, another organisation's root or grant, or
    the app's own data (``validators.grant_problem``). Granting it again changes nothing."""
    if problem := grant_problem(organisation, path):
        raise PathNotAllowed(problem, fields={"path": [problem]})
    resolved = str(Path(path).expanduser().resolve(strict=False))
    grant, created = PathGrant.objects.get_or_create(
        organisation=organisation,
        path=resolved,
        defaults={
            "note": note,
            "created_by": created_by if getattr(created_by, "pk", None) else None,
        },
    )
    if created:
        audit_record(
            organisation=organisation, action="path_grant.create", obj=grant, details={"note": note}
        )
    return grant


def path_grant_revoke(*, organisation: Organisation, path: str) -> int:
    """Remove the grant of ``path`` (as given or resolved); how many were removed."""
    resolved = str(Path(path).expanduser().resolve(strict=False))
    grants = PathGrant.objects.filter(organisation=organisation, path__in={path, resolved})
    with transaction.atomic():
        for grant in grants:
            audit_record(organisation=organisation, action="path_grant.revoke", obj=grant)
        deleted, _ = grants.delete()
    return deleted
