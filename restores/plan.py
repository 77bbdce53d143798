"""What goes where: a backup's contents mapped onto a target environment, with the checks
that refuse a restore before anything is created (engine families, PostgreSQL versions).

One mapping serves the plan a user reads first (``restore_plan_for``, behind
``POST /api/backups/{id}/restore-plan``), the restore request that stores it on the
Restore, and the worker that runs it (``planned_members``, which refuses when the target
environment changed since): plan and restore cannot disagree.

A one-database backup goes into, in this order: the database the caller chose
(``target_database``), the backup's own database when restoring in place, the target
environment's database with the same slug, else its only database of the same engine
family. That last fallback replaces a database of another name, so the plan says so in its
warnings. A full backup's databases go only into databases of the same slug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backups.engines import ConnectionSpec, EngineError, get_engine
from backups.keys import age_identity_configured
from backups.models import Backup, BackupKind, Encryption
from backups.services import connection_spec_for
from backups.services import files_spec_for as environment_files_spec
from config.errors import InvalidInput, Unprocessable
from organizations.hostpolicy import host_rules
from organizations.models import Database, Engine, Environment
from organizations.validators import require_restore_paths
from restores import loading

# Engines whose dumps load into each other.
ENGINE_FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
FILES_COUNT_KEYS = ("files", "directories", "symlinks")


@dataclass(eq=False)
class Member:
    """One thing to restore: a database dump or the files tree, and where it goes."""

    slot: str  # "" for a single-artifact backup, else "database/<slug>" or "files"
    label: str
    target: ConnectionSpec
    expected: dict[str, int]
    database: Database | None = None
    source_engine: str = ""
    scratch: ConnectionSpec | None = None
    swapped: bool = False
    notes: list[str] = field(default_factory=list)  # for the restore's message
    # What the plan shows: where the member comes from and how its target was chosen.
    source_database: Database | None = None
    source_name: str = ""
    source_version: str = ""
    target_version: str = ""
    chosen_by: str = ""  # one of CHOSEN_BY


# How a member's target was found; "engine" is the fallback the plan warns about.
CHOSEN_BY = ("request", "own", "slug", "engine", "files")


def family(engine: str) -> str:
    return ENGINE_FAMILIES.get(engine, engine)


def full_versions(backup: Backup) -> dict[str, str]:
    """A full backup records ``slug:version, slug:version`` for its databases."""
    versions = {}
    for part in backup.engine_version.split(", "):
        slug, sep, version = part.partition(":")
        if sep and slug:
            versions[slug] = version
    return versions


ONE_DATABASE_ONLY = (
    "targetDatabaseId is only for a backup of one database; a {kind} goes into the "
    "databases of the same name (and the files directory) of the target environment."
)


def plan_restore(
    backup: Backup, environment: Environment, *, target_database: Database | None = None
) -> list[Member]:
    """Map the backup's contents onto the target environment, or say why it cannot be.

    ``target_database`` (a one-database backup only) is the database to replace.
    """
    if backup.kind == BackupKind.DATABASE:
        return [
            database_member(
                backup,
                environment,
                engine=backup.engine,
                expected=dict(backup.row_counts),
                target_database=target_database,
            )
        ]
    if backup.kind not in (BackupKind.FILESYSTEM, BackupKind.FULL):
        raise Unprocessable(f"A {backup.get_kind_display()} cannot be restored by Strongbox yet.")
    if target_database is not None:
        message = ONE_DATABASE_ONLY.format(kind=backup.get_kind_display().lower())
        raise Unprocessable(message, fields={"target_database": [message]})
    if backup.kind == BackupKind.FILESYSTEM:
        return [files_member(environment, dict(backup.row_counts), slot="")]
    members = []
    sources = {d.slug: d for d in backup.environment.databases.all()}
    targets = list(environment.databases.order_by("name"))  # read once for every member
    rules = host_rules(environment.project.organisation_id)  # likewise the host policy
    for slug, version in full_versions(backup).items():
        source = sources.get(slug)
        source_engine = source.engine if source else ""
        database = matching_database(
            environment, slug=slug, engine=source_engine, exact=True, databases=targets
        )
        target_version = known_version(database)
        check_engine(source_engine, version, database, target_version=target_version)
        prefix = f"{slug}/"
        expected = {
            key[len(prefix) :]: n for key, n in backup.row_counts.items() if key.startswith(prefix)
        }
        members.append(
            Member(
                slot=f"database/{slug}",
                label=database.name,
                target=connection_spec_for(database, rules=rules),
                expected=expected,
                database=database,
                source_engine=source_engine,
                source_database=source,
                source_name=source.name if source else slug,
                source_version=version,
                target_version=target_version,
                chosen_by="slug",
            )
        )
    files_counts = {k: v for k, v in backup.row_counts.items() if k in FILES_COUNT_KEYS}
    if files_counts:
        members.append(files_member(environment, files_counts, slot="files"))
    if not members:
        raise Unprocessable("This full backup holds neither databases nor files.")
    return members


PITR_KINDS = (BackupKind.DATABASE, BackupKind.BASE)
PITR_ONE_DATABASE = (
    "A point-in-time restore recovers one PostgreSQL database: restore a backup of that "
    "database (or one of its base backups) with pitrTimestamp."
)


def plan_pitr_restore(
    backup: Backup, environment: Environment, *, target_database: Database | None = None
) -> list[Member]:
    """The one member of a point-in-time restore: the backup's PostgreSQL database, or the
    target environment's matching one (or ``target_database``). Its expected row counts
    come from the recovered copy (nothing recorded them at the target time)."""
    source = backup.database
    if backup.kind not in PITR_KINDS or source is None or family(source.engine) != "postgresql":
        raise Unprocessable(PITR_ONE_DATABASE, fields={"pitr_timestamp": [PITR_ONE_DATABASE]})
    return [
        database_member(
            backup, environment, engine=source.engine, expected={}, target_database=target_database
        )
    ]


def database_member(
    backup: Backup,
    environment: Environment,
    *,
    engine: str,
    expected: dict[str, int],
    target_database: Database | None = None,
) -> Member:
    """The member of a one-database restore: ``target_database`` when the caller chose
    one, else the backup's own database in its own environment, else the target
    environment's matching one."""
    source = backup.database
    field_name = "target_environment"
    if target_database is not None:
        if target_database.environment_id != environment.pk:
            message = f"{target_database.name} is not a database of {environment}."
            raise InvalidInput(message, fields={"target_database": [message]})
        database, chosen_by, field_name = target_database, "request", "target_database"
    elif environment.pk == backup.environment_id and source is not None:
        database, chosen_by = source, "own"
    else:
        slug = source.slug if source else None
        database = matching_database(environment, slug=slug, engine=engine)
        chosen_by = "slug" if slug and database.slug == slug else "engine"
    target_version = known_version(database)
    check_engine(
        engine, backup.engine_version, database, target_version=target_version, field=field_name
    )
    return Member(
        slot="",
        label=database.name,
        target=connection_spec_for(database),
        expected=expected,
        database=database,
        source_engine=engine,
        source_database=source,
        source_name=source.name if source else "",  # its database is no longer registered
        source_version=backup.engine_version,
        target_version=target_version,
        chosen_by=chosen_by,
    )


def files_member(environment: Environment, expected: dict, *, slot: str) -> Member:
    if not environment.files_path:
        raise Unprocessable(
            f"The target environment {environment} has no files directory to restore into.",
            fields={"target_environment": ["The environment has no files directory."]},
        )
    return Member(
        slot=slot,
        label="files",
        target=environment_files_spec(environment),
        expected=expected,
        source_engine="files",
        source_name="files",
        chosen_by="files",
    )


def matching_database(
    environment: Environment,
    *,
    slug: str | None,
    engine: str,
    exact: bool = False,
    databases: list[Database] | None = None,
) -> Database:
    """The target's database with the same slug, else its only database of the same engine."""
    if databases is None:
        databases = list(environment.databases.order_by("name"))
    same_slug = [d for d in databases if slug and d.slug == slug]
    if same_slug:
        return same_slug[0]
    compatible = [d for d in databases if not engine or family(d.engine) == family(engine)]
    if len(compatible) == 1 and not exact:
        return compatible[0]
    what = f"{engine} database" if engine else "database"
    if exact or not compatible:
        detail = f" named {slug!r}" if exact and slug else ""
        raise Unprocessable(
            f"The target environment {environment} has no {what}{detail} to restore into.",
            fields={"target_environment": [f"No compatible {what}{detail}."]},
        )
    raise Unprocessable(
        f"The target environment {environment} has several {what}s and none is named "
        f"{slug!r}; Strongbox cannot tell which one to overwrite. Choose one with "
        "targetDatabaseId.",
        fields={"target_environment": ["Ambiguous target database: choose one."]},
    )


def known_version(database: Database) -> str:
    """The target's server version: the one last seen, else asked now ("" if unreachable)."""
    if database.version:
        return database.version
    try:
        return get_engine(database.engine).server_version(connection_spec_for(database))
    except EngineError:
        return ""  # unreachable now; the restore checks again before loading


def check_engine(
    source_engine: str,
    source_version: str,
    database: Database,
    *,
    target_version: str | None = None,
    field: str = "target_environment",
) -> None:
    if source_engine and family(source_engine) != family(database.engine):
        raise Unprocessable(
            f"A {source_engine} backup cannot be restored into {database.name}, a "
            f"{database.engine} database.",
            fields={field: ["Incompatible database engine."]},
        )
    check_version(
        source_engine, source_version, database, target_version=target_version, field=field
    )


def check_version(
    source_engine: str,
    source_version: str,
    database: Database,
    *,
    live: bool = False,
    target_version: str | None = None,
    field: str = "target_environment",
) -> None:
    """A PostgreSQL dump from a newer major version than the target server is refused."""
    if family(source_engine) != "postgresql" or not source_version:
        return
    if target_version is None:
        target_version = "" if live else database.version
    if not target_version:
        try:
            target_version = get_engine(database.engine).server_version(
                connection_spec_for(database)
            )
        except EngineError:
            return  # unreachable now; the restore checks again before loading
    source_major = loading.major_version("postgresql", source_version)
    target_major = loading.major_version("postgresql", target_version)
    if source_major and target_major and source_major > target_major:
        raise Unprocessable(
            f"This backup was dumped from PostgreSQL {source_version}; the target database "
            f"{database.name} runs on PostgreSQL {target_version}, which cannot load a dump "
            f"from a newer major version. Restore it into a server running PostgreSQL "
            f"{loading.version_text(source_major)} or later.",
            fields={field: ["The target server is too old for this dump."]},
        )


def source_version(backup: Backup, member: Member) -> str:
    if backup.kind == BackupKind.FULL:
        return full_versions(backup).get(member.slot.partition("/")[2], "")
    return backup.engine_version


# --- the plan a user reads before restoring -------------------------------------------------


@dataclass(eq=False)
class RestorePlan:
    """Which member of a backup goes into which target, and what the user should know first."""

    backup: Backup
    environment: Environment
    members: list[Member]
    warnings: list[str]

    def records(self) -> list[dict]:
        """The members as stored on the Restore (and rendered by the API and the page)."""
        return [member_record(member, self.environment) for member in self.members]


def restore_plan_for(
    backup: Backup,
    environment: Environment,
    *,
    target_database: Database | None = None,
    pitr: bool = False,
) -> RestorePlan:
    """The plan of restoring ``backup`` into ``environment`` (to a point in time when
    ``pitr``), or the ApplicationError that refuses it."""
    members = plan_restore_members(backup, environment, target_database=target_database, pitr=pitr)
    return RestorePlan(
        backup=backup,
        environment=environment,
        members=members,
        warnings=plan_warnings(backup, environment, members),
    )


def engine_label(engine: str) -> str:
    return Engine(engine).label if engine in Engine.values else engine


def _major(engine: str, version: str) -> tuple[int, ...] | None:
    """The part of a version that decides compatibility: 15 for PostgreSQL 15.4, 10.11 for
    MariaDB 10.11.6 (each of its x.y series is a major release), 3 for SQLite 3.40.1."""
    major = loading.major_version(family(engine), version) if version else None
    if major and engine == "sqlite":
        return major[:1]
    return major


def plan_warnings(backup: Backup, environment: Environment, members: list[Member]) -> list[str]:
    """What replaces something the user may not expect: in place, another name, another
    engine or major version, and the fallback to the only database of the same engine; and
    an age backup that no identity here can open."""
    warnings = []
    if backup.encryption == Encryption.AGE and not age_identity_configured(backup.organisation):
        warnings.append(
            "The backup is encrypted with age and no age identity is configured here: the "
            "restore fails unless the worker has STRONGBOX_AGE_IDENTITY_FILE or the "
            "organisation's identity is set."
        )
    if environment.pk == backup.environment_id:
        warnings.append(
            f"The target is the backup's own environment {environment}: this restore "
            "replaces its current data in place."
        )
    for member in members:
        target = member.database
        if target is None:
            continue
        source_name = member.source_name
        if member.chosen_by == "engine":
            why = (
                f"{environment} has no database with the slug {member.source_database.slug!r} "
                f"of {source_name}"
                if member.source_database
                else "The backed-up database is no longer registered"
            )
            warnings.append(
                f"{why}, so {target.name}, the only {engine_label(target.engine)} database of "
                f"{environment}, would be replaced. Choose the database explicitly "
                "(targetDatabaseId) to confirm it."
            )
        if source_name and target.name != source_name:
            warnings.append(f"{source_name} goes into {target.name}, a database with another name.")
        who = source_name or "The backed-up database"
        if member.source_engine and member.source_engine != target.engine:
            warnings.append(
                f"{who} is a {engine_label(member.source_engine)} backup and "
                f"{target.name} a {engine_label(target.engine)} database."
            )
        source_major = _major(member.source_engine, member.source_version)
        target_major = _major(target.engine, member.target_version)
        if source_major and target_major and source_major != target_major:
            warnings.append(
                f"{who} was backed up from {engine_label(member.source_engine)} "
                f"{member.source_version}; {target.name} runs "
                f"{engine_label(target.engine)} {member.target_version}, another major version."
            )
    return warnings


def member_record(member: Member, environment: Environment) -> dict:
    """One member in the domain's spelling; ``database_id`` is None for the files."""
    source, database = member.source_database, member.database
    return {
        "label": member.label,
        "slot": member.slot,
        "chosen_by": member.chosen_by,
        "source": {
            "database_id": str(source.pk) if source is not None and database else None,
            "name": member.source_name,
            "engine": member.source_engine,
            "version": member.source_version,
        },
        "target": {
            "environment_id": str(environment.pk),
            "database_id": str(database.pk) if database is not None else None,
            "name": database.name if database is not None else member.target.name,
            "engine": database.engine if database is not None else "files",
            "version": member.target_version,
        },
    }


def replaced_text(records: list[dict]) -> str:
    """What a restore replaces, by name: ``the database Analytics (SQLite) with Main's
    data, the files in /srv/app``."""
    parts = []
    for record in records:
        source, target = record["source"], record["target"]
        if target["database_id"] is None:
            parts.append(f"the files in {target['name']}")
            continue
        text = f"the database {target['name']} ({engine_label(target['engine'])})"
        if source["name"] and source["name"] != target["name"]:
            text += f" with {source['name']}'s data"
        parts.append(text)
    return ", ".join(parts)


def restore_target_text(restore) -> str:
    """The target of a restore for titles: ``Production (Analytics, files)``."""
    names = ", ".join(record["target"]["name"] for record in restore.members)
    return f"{restore.target_environment} ({names})" if names else str(restore.target_environment)


TARGET_CHANGED = (
    "The target environment changed since this restore was requested: it was to replace "
    "{planned}, it would now replace {now}. Nothing was restored; request it again."
)


def planned_members(restore) -> list[Member]:
    """The members of a requested restore, mapped again when it runs (connections and row
    counts are needed then) onto the same targets as its stored plan, or refused."""
    backup = restore.backup
    one_database = backup.kind not in (BackupKind.FULL, BackupKind.FILESYSTEM)
    members = plan_restore_members(
        backup,
        restore.target_environment,
        target_database=restore.target_database if one_database else None,
        pitr=restore.pitr_target is not None,
    )
    if restore.members:  # restores requested before plans were stored have none
        planned = sorted((r["slot"], r["target"]["database_id"]) for r in restore.members)
        now = sorted((m.slot, str(m.database.pk) if m.database else None) for m in members)
        if planned != now:
            records = [member_record(m, restore.target_environment) for m in members]
            raise Unprocessable(
                TARGET_CHANGED.format(
                    planned=replaced_text(restore.members), now=replaced_text(records)
                )
            )
    return members


def plan_restore_members(
    backup: Backup,
    environment: Environment,
    *,
    target_database: Database | None = None,
    pitr: bool = False,
) -> list[Member]:
    plan = plan_pitr_restore if pitr else plan_restore
    members = plan(backup, environment, target_database=target_database)
    # The targets' server paths, for the plan, the request and again when the restore runs
    # (a symlink swapped in after the target was saved leads elsewhere now).
    require_restore_paths(
        environment,
        databases=[m.database for m in members if m.database is not None],
        files=any(m.database is None for m in members),
    )
    return members
