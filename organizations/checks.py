"""System check: rows saved before the per-organisation path rules (or before a slug
change, a revoked grant, a moved directory) that break them now.

Each is a warning naming the row, so ``manage.py check`` lists what the operator should
move or grant after an upgrade (README, "Server paths"); until then, a backup or restore
of such a row is refused when it starts.
"""

from __future__ import annotations

from django.core.checks import Error, Warning
from django.db import DatabaseError

from organizations.models import Database, Engine, Environment
from organizations.validators import (
    PathNotAllowed,
    app_data_paths,
    app_directories,
    require_database_paths,
    require_environment_paths,
    tenant_root,
)

HINT = (
    "Move it under the organisation's directory in STRONGBOX_TENANT_ROOT, or grant its "
    "directory to the organisation (manage.py grant_path), then save the row again."
)


def _problems(rows):
    for model, require, queryset in rows:
        for row in queryset.order_by("pk"):
            try:
                require(row)
            except PathNotAllowed as exc:
                yield model, row, exc


def path_warnings(rows, databases=None) -> list[Warning]:
    """strongbox.W120 for each row of ``rows`` ((model, require_…_paths, queryset) triples)
    whose server paths its organisation may not use. Other apps with path-bearing rows (local
    destinations) register a check of their own that calls this."""
    if databases is not None and "default" not in databases:
        return []
    try:
        return [
            Warning(
                f"{model._meta.verbose_name.capitalize()} {row} ({row.pk}) of "
                f"{row.organisation.name}: {', '.join(exc.fields)}: {exc.message}",
                hint=HINT,
                obj=row,
                id="strongbox.W120",
            )
            for model, row, exc in _problems(rows)
        ]
    except DatabaseError:  # not migrated yet (a first ``migrate`` runs the checks too)
        return []


def check_tenant_root(app_configs=None, **kwargs):
    """STRONGBOX_TENANT_ROOT must lie apart from the app's data and strictly inside (or
    outside) its directories, or an organisation's directory could be app data."""
    root = tenant_root()
    clashes = [
        path
        for path in app_data_paths()
        if path == root or root in path.parents or path in root.parents
    ] + [
        directory
        for directory in app_directories()
        if directory == root or root in directory.parents
    ]
    if not clashes:
        return []
    return [
        Error(
            f"STRONGBOX_TENANT_ROOT ({root}) overlaps the app's own data: "
            + ", ".join(str(path) for path in clashes),
            hint="Point it at a directory of its own, such as <STRONGBOX_VAR_DIR>/tenants.",
            id="strongbox.E120",
        )
    ]


def check_tenant_paths(app_configs=None, databases=None, **kwargs):
    """Warnings for databases and environments whose server paths their organisation may
    not use (strongbox.W120); local destinations: ``destinations.checks``."""
    rows = [
        (
            Database,
            require_database_paths,
            Database.objects.filter(engine__in=[Engine.SQLITE, Engine.POSTGRESQL]).select_related(
                "environment__project__organisation"
            ),
        ),
        (
            Environment,
            require_environment_paths,
            Environment.objects.exclude(files_path="").select_related("project__organisation"),
        ),
    ]
    return path_warnings(rows, databases)
