"""What goes where: a backup's contents mapped onto a target environment, with the checks
that refuse a restore before anything is created (engine families, PostgreSQL versions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from backups.engines import ConnectionSpec, EngineError, get_engine
from backups.models import Backup, BackupKind
from backups.services import connection_spec_for
from backups.services import files_spec_for as environment_files_spec
from config.errors import Unprocessable
from organizations.models import Database, Environment
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


def plan_restore(backup: Backup, environment: Environment) -> list[Member]:
    """Map the backup's contents onto the target environment, or say why it cannot be."""
    if backup.kind == BackupKind.DATABASE:
        return [
            database_member(
                backup, environment, engine=backup.engine, expected=dict(backup.row_counts)
            )
        ]
    if backup.kind == BackupKind.FILESYSTEM:
        return [files_member(environment, dict(backup.row_counts), slot="")]
    if backup.kind != BackupKind.FULL:
        raise Unprocessable(f"A {backup.get_kind_display()} cannot be restored by Strongbox yet.")
    members = []
    sources = {d.slug: d for d in backup.environment.databases.all()}
    for slug, version in full_versions(backup).items():
        source_engine = sources[slug].engine if slug in sources else ""
        database = matching_database(environment, slug=slug, engine=source_engine, exact=True)
        check_engine(source_engine, version, database)
        prefix = f"{slug}/"
        expected = {
            key[len(prefix) :]: n for key, n in backup.row_counts.items() if key.startswith(prefix)
        }
        members.append(
            Member(
                slot=f"database/{slug}",
                label=database.name,
                target=connection_spec_for(database),
                expected=expected,
                database=database,
                source_engine=source_engine,
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


def plan_pitr_restore(backup: Backup, environment: Environment) -> list[Member]:
    """The one member of a point-in-time restore: the backup's PostgreSQL database, or the
    target environment's matching one. Its expected row counts come from the recovered copy
    (nothing recorded them at the target time)."""
    source = backup.database
    if backup.kind not in PITR_KINDS or source is None or family(source.engine) != "postgresql":
        raise Unprocessable(PITR_ONE_DATABASE, fields={"pitrTimestamp": [PITR_ONE_DATABASE]})
    return [database_member(backup, environment, engine=source.engine, expected={})]


def database_member(
    backup: Backup, environment: Environment, *, engine: str, expected: dict[str, int]
) -> Member:
    """The member of a one-database restore: the backup's own database in its own
    environment, else the target environment's matching one."""
    source = backup.database
    if environment.pk == backup.environment_id and source is not None:
        database = source
    else:
        database = matching_database(
            environment, slug=source.slug if source else None, engine=engine
        )
    check_engine(engine, backup.engine_version, database)
    return Member(
        slot="",
        label=database.name,
        target=connection_spec_for(database),
        expected=expected,
        database=database,
        source_engine=engine,
    )


def files_member(environment: Environment, expected: dict, *, slot: str) -> Member:
    if not environment.files_path:
        raise Unprocessable(
            f"The target environment {environment} has no files directory to restore into.",
            fields={"targetEnvironmentId": ["The environment has no files directory."]},
        )
    return Member(
        slot=slot,
        label="files",
        target=environment_files_spec(environment),
        expected=expected,
        source_engine="files",
    )


def matching_database(
    environment: Environment, *, slug: str | None, engine: str, exact: bool = False
) -> Database:
    """The target's database with the same slug, else its only database of the same engine."""
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
            fields={"targetEnvironmentId": [f"No compatible {what}{detail}."]},
        )
    raise Unprocessable(
        f"The target environment {environment} has several {what}s and none is named "
        f"{slug!r}; Strongbox cannot tell which one to overwrite.",
        fields={"targetEnvironmentId": ["Ambiguous target database."]},
    )


def check_engine(source_engine: str, source_version: str, database: Database) -> None:
    if source_engine and family(source_engine) != family(database.engine):
        raise Unprocessable(
            f"A {source_engine} backup cannot be restored into {database.name}, a "
            f"{database.engine} database.",
            fields={"targetEnvironmentId": ["Incompatible database engine."]},
        )
    check_version(source_engine, source_version, database)


def check_version(
    source_engine: str, source_version: str, database: Database, *, live: bool = False
) -> None:
    """A PostgreSQL dump from a newer major version than the target server is refused."""
    if family(source_engine) != "postgresql" or not source_version:
        return
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
            fields={"targetEnvironmentId": ["The target server is too old for this dump."]},
        )


def source_version(backup: Backup, member: Member) -> str:
    if backup.kind == BackupKind.FULL:
        return full_versions(backup).get(member.slot.partition("/")[2], "")
    return backup.engine_version
