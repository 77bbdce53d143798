"""The HTML pages are layered: an app's views import no other app's views, the page base
(``organizations.pages``) imports no views at all, and no app imports ``front``, the
pages composed of several apps. Read from the source (ast), so a cycle hidden in a
function body counts as much as one at the top of a module; and the page layer keeps
its imports at the top, where such a cycle would show.
"""

import ast
from pathlib import Path

from django.apps import apps
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = sorted(config.name for config in apps.get_app_configs() if Path(config.path).parent == ROOT)


def imported_modules(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports; ``from x import y`` counts as x and x.y."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def views_modules(app: str) -> list[Path]:
    package = ROOT / app / "views"
    return [ROOT / app / "views.py"] if not package.is_dir() else sorted(package.glob("*.py"))


def page_layer() -> list[Path]:
    pages = [path for app in APPS for path in views_modules(app) if path.exists()]
    return [*pages, ROOT / "organizations" / "pages.py", *sorted((ROOT / "front").glob("*.py"))]


def test_the_project_apps_are_found():
    assert {"organizations", "backups", "restores", "schedules", "front"} <= set(APPS)


def test_no_app_views_import_another_apps_views():
    offending = []
    for app in APPS:
        others = {f"{other}.views" for other in APPS if other != app}
        for path in views_modules(app):
            if path.exists():
                for module in imported_modules(path):
                    if module in others or module.startswith(tuple(f"{o}." for o in others)):
                        offending.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offending == []


def test_the_page_base_imports_no_views():
    modules = imported_modules(ROOT / "organizations" / "pages.py")
    views = [m for m in modules if m.split(".")[0] in APPS and "views" in m.split(".")]
    assert views == []


def test_no_app_imports_the_composed_pages():
    offending = [
        f"{path.relative_to(ROOT)} imports {module}"
        for app in APPS
        if app != "front"
        for path in (ROOT / app).rglob("*.py")
        for module in imported_modules(path)
        if module == "front" or module.startswith("front.")
    ]
    assert offending == []


def test_the_page_layer_imports_at_the_top_of_its_modules():
    inside_functions = [
        str(path.relative_to(ROOT))
        for path in page_layer()
        if imported_modules(path) != imported_modules(path, top_level_only=True)
    ]
    assert inside_functions == []
