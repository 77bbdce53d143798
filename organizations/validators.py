"""Checks on what tenants may point Strongbox at on the server itself.

An organisation admin sets an environment's files directory, a SQLite database's path and
a local destination's directory. The workers read and write those paths with their own
privileges, so they must stay inside the directories the operator allowed
(STRONGBOX_ALLOWED_PATHS), or one tenant could back up, and restore elsewhere, any file on
the machine.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

# The names restores give their scratch and kept copies beside a target
# (``restores.loading.scratch_spec``): a tenant's database or path must not look like one,
# or a restore's cleanup (the reaper's too) could take it for its own.
RESERVED_NAME = re.compile(r"(_sbx_[a-z]+_|\.sbx-[a-z]+-)[0-9a-f]{8}$")


def allowed_roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.STRONGBOX_ALLOWED_PATHS]


def server_path_problem(value: str) -> str | None:
    """None when ``value`` may be used; otherwise what is wrong with it."""
    path = Path(value)
    if not path.is_absolute():
        return "Give an absolute path."
    # resolve() follows symlinks, so a link inside an allowed root cannot lead outside it.
    resolved = path.resolve()
    roots = allowed_roots()
    if any(resolved == root or root in resolved.parents for root in roots):
        return None
    listed = ", ".join(str(root) for root in roots) or "(none)"
    return (
        f"{value} is outside the directories this server allows ({listed}); "
        "the operator sets them in STRONGBOX_ALLOWED_PATHS."
    )


def reserved_name_problem(value: str) -> str | None:
    """None unless ``value`` (a database name or a path) ends like a restore's own copies."""
    if value and RESERVED_NAME.search(value.rstrip("/")):
        return (
            f"{value} ends like the copies Strongbox keeps beside a target during a restore "
            "(_sbx_<word>_<8 hex digits>, .sbx-<word>-<8 hex digits>); choose another name."
        )
    return None
