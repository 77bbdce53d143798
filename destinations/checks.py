"""System check: local destinations whose directory their organisation may not use
(``organizations.checks``: the same warning, strongbox.W120, for every path-bearing row)."""

from __future__ import annotations

from destinations.models import Destination, DestinationKind
from organizations.checks import path_warnings
from organizations.validators import require_destination_paths


def check_destination_paths(app_configs=None, databases=None, **kwargs):
    local = Destination.objects.filter(kind=DestinationKind.LOCAL).select_related("organisation")
    return path_warnings([(Destination, require_destination_paths, local)], databases)
