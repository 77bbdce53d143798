"""The API package stays layered: ``api/base`` needs only Django, DRF and ``config``;
the apps (and their own ``api/`` packages) may use it; ``api/dialects`` sits on top,
reading the apps' selectors, and nothing in an app imports a dialect.

Read from the source with ``ast`` (every import, also those inside functions), so a
new import against the layers fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "api" / "base"
DIALECTS = "api.dialects"
# What api/base may import besides the standard library (asgiref comes with Django).
BASE_MAY_IMPORT = {"django", "rest_framework", "drf_spectacular", "asgiref", "config"}
# Not apps: the project, the API package itself, and what is never imported by the code.
NOT_APPS = {"api", "config", "tests", "bench", "scripts", "docs", "static", "templates", "var"}


def _apps() -> set[str]:
    """The project's apps: top-level packages with models (pitr/ and later ones included)."""
    return {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_APPS
        and any((path.parent / name).exists() for name in ("models.py", "models", "apps.py"))
    }


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in ``source``, the text of ``module``; ``from a
    import b`` gives ``a.b`` so that importing a submodule by name is seen."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = package[: len(package) - node.level + 1] if node.level else []
            dotted = ".".join([*start, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{dotted}.{alias.name}") for alias in node.names]
    return found


def _imports_of(path: Path) -> list[tuple[int, str]]:
    return _imported(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def _modules(*roots: Path):
    for root in roots:
        yield from sorted(path for path in root.rglob("*.py") if "migrations" not in path.parts)


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_apps_are_found():
    assert {"organizations", "backups", "restores", "schedules"} <= _apps()


def _base_may_import(name: str) -> bool:
    top = name.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in BASE_MAY_IMPORT
        or top == "__future__"
        or _is_under(name, "api.base")
    )


def test_the_api_base_imports_only_django_drf_and_config():
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules(BASE)
        for line, name in _imports_of(path)
        if not _base_may_import(name)
    ]
    assert offending == []


def test_the_api_base_imports_no_app_and_no_dialect():
    apps = _apps()
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules(BASE)
        for line, name in _imports_of(path)
        if name.split(".")[0] in apps or _is_under(name, DIALECTS)
    ]
    assert offending == []


def test_no_app_imports_a_dialect():
    app_roots = [ROOT / app for app in sorted(_apps())]
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules(*app_roots)
        for line, name in _imports_of(path)
        if _is_under(name, DIALECTS)
    ]
    assert offending == []


def test_the_check_sees_imports_inside_functions_and_relative_ones():
    source = "def f():\n    from api.dialects import seed000\n\nfrom ..dialects import urls\n"
    names = [name for _, name in _imported(source, "api.base.example")]
    assert sorted(names) == ["api.dialects.seed000", "api.dialects.urls"]


# The audit log's recording core sits under every app, ``organizations`` included, so that
# each records its own actions; its API and page sit on organizations' tenancy like any app's.
AUDIT_CORE = ("actions", "context", "models", "receivers", "services", "tasks")


def test_the_audit_core_imports_no_other_app():
    apps = _apps() - {"audit"}
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in (ROOT / "audit" / f"{module}.py" for module in AUDIT_CORE)
        for line, name in _imports_of(path)
        if name.split(".")[0] in apps or _is_under(name, DIALECTS)
    ]
    assert offending == []


# Apps that sit above others (docs/ARCHITECTURE.md's layers): nothing below them imports them.
UPPER_APPS = {"drills": {"front", "drills"}}


def test_no_app_below_drills_imports_it():
    apps = _apps()
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for app in sorted(apps)
        for upper, allowed in UPPER_APPS.items()
        if app not in allowed
        for path in _modules(ROOT / app)
        for line, name in _imports_of(path)
        if _is_under(name, upper)
    ]
    assert offending == []
