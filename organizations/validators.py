"""Which server paths an organisation may point Strongbox at.

An organisation admin sets an environment's files directory, a SQLite database's path, a
PostgreSQL database's libpq files (``sslcert``, ``sslkey``, ``sslrootcert``) and a local
destination's directory. The workers read and write those paths with their own
privileges, so each organisation is held to its own roots, or one tenant could back up
another's files, or restore over another's database:

- ``<STRONGBOX_TENANT_ROOT>/<organisation slug>/`` (slugs hold no ``/`` and no ``..``, so
  two organisations' roots never nest), plus the roots the operator granted it alone
  (``PathGrant``; a grant never overlaps the tenant root, another organisation's grant or
  the app's data);
- never the app's own data, even when granted: its SQLite database (and the ``-wal``,
  ``-shm``, ``-journal`` files beside it), the artifact root, the temporary, spool and WAL
  spool directories, its key files, and its code and ``VAR_DIR``, except the tenant root
  inside them.

Paths are resolved (symlinks followed, ``Path.resolve(strict=False)``), so a link inside a
root does not lead outside it. The same question is asked when a row is saved (services,
API, forms, admin) and again when a backup or restore starts, which catches a link swapped
in after the row was saved and rows saved before these rules existed (``checks.py`` lists
those for ``manage.py check``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import slug_re

from config.errors import InvalidInput
from organizations.models import Database, Environment, Organisation, PathGrant

if TYPE_CHECKING:
    from destinations.models import Destination

# The names restores give their scratch and kept copies beside a target
# (``restores.loading.scratch_spec``): a tenant's database or path must not look like one,
# or a restore's cleanup (the reaper's too) could take it for its own.
RESERVED_NAME = re.compile(r"(_sbx_[a-z]+_|\.sbx-[a-z]+-)[0-9a-f]{8}$")

# libpq options that name files on the worker (PostgreSQL engine, ``Database.options``).
LIBPQ_FILE_OPTIONS = ("sslcert", "sslkey", "sslrootcert")
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")


class PathNotAllowed(InvalidInput):
    """A path the organisation may not use; ``fields`` names the field at fault."""


# --- the roots ------------------------------------------------------------------------------


def _resolved(value: str | Path) -> Path:
    return Path(value).expanduser().resolve(strict=False)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _overlap(a: Path, b: Path) -> bool:
    return _within(a, b) or _within(b, a)


def tenant_root() -> Path:
    return _resolved(settings.STRONGBOX_TENANT_ROOT)


def organisation_root(organisation: Organisation) -> Path | None:
    """``<tenant root>/<slug>``; None for a slug that is not a plain slug (one saved past
    the form's validation), which could name the tenant root itself or a parent."""
    slug = organisation.slug or ""
    if not slug_re.fullmatch(slug):
        return None
    return tenant_root() / slug


def granted_roots(organisation: Organisation) -> list[Path]:
    paths = PathGrant.objects.filter(organisation=organisation).values_list("path", flat=True)
    return [_resolved(path) for path in paths]


def organisation_roots(organisation: Organisation) -> list[Path]:
    own = organisation_root(organisation)
    return ([own] if own is not None else []) + granted_roots(organisation)


# --- the app's own data ---------------------------------------------------------------------


def app_data_paths() -> list[Path]:
    """Files and directories of the app itself: no tenant path may be inside or around
    any of them."""
    paths: list[str | Path] = [
        settings.STRONGBOX_LOCAL_DESTINATION_ROOT,
        settings.STRONGBOX_TMP_DIR,
        settings.STRONGBOX_WAL_SPOOL_DIR,
        settings.STRONGBOX_SECRETS_KEY_FILE,
    ]
    if settings.STRONGBOX_KEY_FILE:
        paths.append(settings.STRONGBOX_KEY_FILE)
    for database in settings.DATABASES.values():
        if database["ENGINE"].endswith("sqlite3"):
            for name in (database.get("NAME"), database.get("TEST", {}).get("NAME")):
                if name and str(name) != ":memory:":
                    paths.append(name)
                    paths.extend(f"{name}{suffix}" for suffix in SQLITE_SIBLINGS)
    return [_resolved(path) for path in paths]


def app_directories() -> list[Path]:
    """Directories of the app (its code, VAR_DIR) that hold the tenant root by default: a
    tenant path may be inside the tenant root there, nowhere else inside, never around."""
    return [_resolved(settings.BASE_DIR), _resolved(settings.VAR_DIR)]


def app_data_problem(path: Path) -> str | None:
    """None unless the resolved ``path`` is, holds or lies inside the app's own data."""
    for data in app_data_paths():
        if _overlap(path, data):
            return f"{path} is the app's own data or holds it ({data}); no organisation may use it."
    root = tenant_root()
    for directory in app_directories():
        inside_tenant_root = _within(path, root) and path != root
        if _within(directory, path) or (_within(path, directory) and not inside_tenant_root):
            return (
                f"{path} is the app's own directory or holds it ({directory}); "
                "no organisation may use it."
            )
    return None


# --- the one question -----------------------------------------------------------------------


def _roots_text(roots: Iterable[Path]) -> str:
    return ", ".join(str(root) for root in roots) or "(none)"


def path_problem(
    organisation: Organisation, value: str, *, roots: list[Path] | None = None
) -> str | None:
    """None when ``organisation`` may use the server path ``value``; otherwise why not.
    A caller asking about several paths of one organisation passes its ``roots`` once."""
    if not Path(value).is_absolute():
        return f"Give an absolute path, not {value!r}."
    resolved = _resolved(value)
    if problem := app_data_problem(resolved):
        return problem
    if roots is None:
        roots = organisation_roots(organisation)
    if any(_within(resolved, root) for root in roots):
        return reserved_name_problem(value)
    shown = value if str(resolved) == value else f"{value} (resolved: {resolved})"
    return (
        f"{shown} is outside the directories {organisation.name} may use "
        f"({_roots_text(roots)}); the server's operator grants others."
    )


def require_path(
    organisation: Organisation, field: str, value: str, *, roots: list[Path] | None = None
) -> None:
    """PathNotAllowed naming ``field`` when ``value`` is set and may not be used."""
    if value and (problem := path_problem(organisation, value, roots=roots)):
        raise PathNotAllowed(problem, fields={field: [problem]})


def reserved_name_problem(value: str) -> str | None:
    """None unless ``value`` (a database name or a path) ends like a restore's own copies."""
    if value and RESERVED_NAME.search(value.rstrip("/")):
        return (
            f"{value} ends like the copies Strongbox keeps beside a target during a restore "
            "(_sbx_<word>_<8 hex digits>, .sbx-<word>-<8 hex digits>); choose another name."
        )
    return None


# --- per kind of row ------------------------------------------------------------------------


def require_database_values(
    organisation: Organisation,
    engine: str,
    database_name: str,
    options: Mapping | None,
    *,
    roots: list[Path] | None = None,
) -> None:
    """The path rules for a database as it would be saved: a SQLite file, or libpq files."""
    if engine == "sqlite":
        require_path(organisation, "database_name", database_name, roots=roots)
    for key in LIBPQ_FILE_OPTIONS if engine == "postgresql" else ():
        value = (options or {}).get(key)
        if value is not None and not isinstance(value, str):
            message = f"{key} must be a file path."
            raise PathNotAllowed(message, fields={f"options.{key}": [message]})
        require_path(organisation, f"options.{key}", value or "", roots=roots)


def require_database_paths(
    database: Database,
    *,
    organisation: Organisation | None = None,
    roots: list[Path] | None = None,
) -> None:
    require_database_values(
        organisation or database.organisation,
        database.engine,
        database.database_name,
        database.options,
        roots=roots,
    )


def require_environment_paths(environment: Environment, *, roots: list[Path] | None = None) -> None:
    require_path(environment.organisation, "files_path", environment.files_path, roots=roots)


def require_destination_values(
    organisation: Organisation, kind: str, config: Mapping, *, field: str = "parameters.path"
) -> None:
    """A local destination's directory; empty is the app's own artifact root, under keys
    the app chooses, so it is not a tenant path."""
    if kind == "local":
        require_path(organisation, field, config.get("path") or "")


def require_destination_paths(destination: Destination) -> None:
    require_destination_values(destination.organisation, destination.kind, destination.config)


def require_backup_paths(target: Database | Environment, *, with_databases: bool = True) -> None:
    """Before a backup reads ``target``: a database's paths, or an environment's files
    directory and (for a full backup) each of its databases'."""
    if isinstance(target, Database):
        require_database_paths(target)
        return
    organisation = target.organisation
    roots = organisation_roots(organisation)
    require_environment_paths(target, roots=roots)
    if with_databases:
        for database in target.databases.all():
            require_database_paths(database, organisation=organisation, roots=roots)


def require_restore_paths(
    environment: Environment, *, databases: Iterable[Database] = (), files: bool = False
) -> None:
    """Before a restore writes into these databases of ``environment`` (and, with ``files``,
    its files directory). The organisation's roots are read once, whatever the count."""
    organisation = environment.organisation
    roots = organisation_roots(organisation)
    for database in databases:
        require_database_paths(database, organisation=organisation, roots=roots)
    if files:
        require_environment_paths(environment, roots=roots)


# --- grants ---------------------------------------------------------------------------------


def grant_problem(
    organisation: Organisation, value: str, *, exclude: PathGrant | None = None
) -> str | None:
    """None when ``value`` may be granted to ``organisation``; otherwise why not."""
    if not Path(value).is_absolute():
        return f"Give an absolute directory, not {value!r}."
    path = _resolved(value)
    if problem := app_data_problem(path):
        return problem
    root = tenant_root()
    if _overlap(path, root):
        return (
            f"{path} overlaps the tenant root {root}, where every organisation already has its "
            "own directory; grant a directory outside it."
        )
    others = PathGrant.objects.exclude(organisation=organisation).select_related("organisation")
    if exclude is not None and exclude.pk:
        others = others.exclude(pk=exclude.pk)
    for grant in others:
        if _overlap(path, _resolved(grant.path)):
            return f"{path} overlaps {grant.path}, granted to {grant.organisation.name}."
    for other in Organisation.objects.exclude(pk=organisation.pk):
        other_root = organisation_root(other)
        if other_root is not None and _overlap(path, other_root):
            return f"{path} overlaps {other_root}, the root of {other.name}."
    return None


def slug_problem(organisation: Organisation, slug: str) -> str | None:
    """None unless giving ``organisation`` the slug ``slug`` would give it a directory that
    already holds files: another (or a deleted) organisation's data left under that name."""
    if slug == organisation.slug and organisation.pk and not organisation._state.adding:
        return None
    directory = tenant_root() / slug
    if directory.is_dir() and any(directory.iterdir()):
        return (
            f"{directory} already holds files, perhaps of an organisation that had this slug "
            "before; move them away first, or choose another slug."
        )
    return None
