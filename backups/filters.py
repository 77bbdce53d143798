"""The one backup FilterSet, shared by every API dialect and the HTML backup list.

Dialects spell the same filters differently (``createdBefore``, ``instance_id``,
upper-case statuses…). Each declares a ``FilterDialect``: which of its query
parameters feeds which canonical filter, and how its status words map to the
canonical ones. ``backups_filter`` translates, validates and filters, and its
errors name the parameter as the caller spelled it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import django_filters
from django.db.models import QuerySet

from backups.engines import ENGINES
from backups.models import Backup, BackupKind, BackupStatus
from config.errors import InvalidInput
from config.filters import UtcIsoDateTimeFilter

STATUS_VALUES = tuple(BackupStatus.values)
ENGINE_VALUES = tuple(sorted(ENGINES))

# Which stored kinds each requested kind means. A PostgreSQL base backup is a
# database backup too.
KIND_FAMILIES = {
    "database": (BackupKind.DATABASE, BackupKind.BASE),
    "db": (BackupKind.DATABASE, BackupKind.BASE),
    "filesystem": (BackupKind.FILESYSTEM,),
    "full": (BackupKind.FULL,),
}
# ``holds``: a full backup holds both a dump and the files, so seed 000 lists it
# under each type.
HOLDS_FAMILIES = {
    "database": (BackupKind.DATABASE, BackupKind.BASE, BackupKind.FULL),
    "db": (BackupKind.DATABASE, BackupKind.BASE, BackupKind.FULL),
    "filesystem": (BackupKind.FILESYSTEM, BackupKind.FULL),
    "full": (BackupKind.FULL,),
}
KIND_VALUES = tuple(KIND_FAMILIES)

DATETIME_ERROR = "Enter an ISO 8601 date-time, e.g. 2025-01-01T00:00:00Z."


def _choices(values) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


def _invalid_choice(values) -> dict[str, str]:
    return {"invalid_choice": f"Unknown value %(value)s; allowed values: {', '.join(values)}."}


class BackupFilterSet(django_filters.FilterSet):
    """Canonical backup filters. Unknown values are errors, never a silently empty list."""

    status = django_filters.ChoiceFilter(
        choices=_choices(STATUS_VALUES), error_messages=_invalid_choice(STATUS_VALUES)
    )
    kind = django_filters.ChoiceFilter(
        choices=_choices(KIND_VALUES),
        error_messages=_invalid_choice(KIND_VALUES),
        method="filter_kind",
    )
    holds = django_filters.ChoiceFilter(
        choices=_choices(KIND_VALUES),
        error_messages=_invalid_choice(KIND_VALUES),
        method="filter_holds",
        label="Backups holding this type (a full backup holds both)",
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", error_messages={"invalid": DATETIME_ERROR}
    )
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gt", error_messages={"invalid": DATETIME_ERROR}
    )
    name = django_filters.CharFilter(method="filter_name", label="Name (exact, or prefix*)")
    database = django_filters.UUIDFilter(
        field_name="database_id", error_messages={"invalid": "Enter a database id (a UUID)."}
    )
    engine = django_filters.ChoiceFilter(
        choices=_choices(ENGINE_VALUES), error_messages=_invalid_choice(ENGINE_VALUES)
    )

    class Meta:
        model = Backup
        fields: list[str] = []

    def filter_kind(self, queryset, name, value):
        return queryset.filter(kind__in=KIND_FAMILIES[value])

    def filter_holds(self, queryset, name, value):
        return queryset.filter(kind__in=HOLDS_FAMILIES[value])

    def filter_name(self, queryset, name, value):
        if value.endswith("*"):
            return queryset.filter(name__startswith=value[:-1])
        return queryset.filter(name=value)


FILTER_NAMES = tuple(BackupFilterSet.base_filters)
# Filters whose empty value matches everything (a name containing "").
FREE_TEXT_FILTERS = frozenset({"name"})

# What each canonical filter means, for the OpenAPI descriptions of every dialect.
FILTER_HELP = {
    "status": "Only backups with this status",
    "kind": "Only backups of this kind (`db` is a synonym of `database`)",
    "holds": "Only backups holding this type (a `full` backup is listed under each type)",
    "created_before": "Only backups created before this ISO 8601 date-time",
    "created_after": "Only backups created after this ISO 8601 date-time",
    "name": "Name: exact match, or a prefix when it ends with `*`",
    "database": "Only backups of this database (UUID)",
    "engine": "Only backups taken with this engine (datastore type)",
}


@dataclass(frozen=True)
class FilterDialect:
    """How one API dialect spells the canonical filters.

    ``params`` maps a canonical filter name to the dialect's query parameter;
    ``statuses`` maps the dialect's status words to canonical statuses
    (matched case-insensitively; None means the canonical words).
    """

    params: Mapping[str, str] = field(default_factory=lambda: {n: n for n in FILTER_NAMES})
    statuses: Mapping[str, str] | None = None

    def status_values(self) -> tuple[str, ...]:
        return tuple(self.statuses) if self.statuses is not None else STATUS_VALUES

    def to_canonical_status(self, value: str) -> str | None:
        words = self.statuses if self.statuses is not None else {s: s for s in STATUS_VALUES}
        folded = {word.lower(): canonical for word, canonical in words.items()}
        return folded.get(value.strip().lower())


CANONICAL = FilterDialect()


def backups_filter(
    *, queryset: QuerySet[Backup], params: Mapping, dialect: FilterDialect = CANONICAL
) -> QuerySet[Backup]:
    """Apply the dialect's filters found in ``params`` (e.g. ``request.query_params``).

    Raises ``InvalidInput`` naming the dialect's parameter for any unusable value.
    """
    data: dict[str, str] = {}
    for canonical, param in dialect.params.items():
        value = params.get(param)
        if value is None or (value == "" and canonical in FREE_TEXT_FILTERS):
            continue
        if value == "":
            # A status, date or id has no empty value; the schema says so, and so do we.
            raise InvalidInput(f"{param}: May not be empty.", fields={param: ["May not be empty."]})
        data[canonical] = value
    if "status" in data:
        status = dialect.to_canonical_status(data["status"])
        if status is None:
            param = dialect.params["status"]
            allowed = ", ".join(dialect.status_values())
            message = f"Unknown value {data['status']!r}; allowed values: {allowed}."
            raise InvalidInput(f"{param}: {message}", fields={param: [message]})
        data["status"] = status
    filterset = BackupFilterSet(data=data, queryset=queryset)
    if not filterset.is_valid():
        fields = {
            dialect.params.get(name, name): [str(m) for m in messages]
            for name, messages in filterset.errors.items()
        }
        message = " ".join(f"{param}: {' '.join(msgs)}" for param, msgs in fields.items())
        raise InvalidInput(message, fields=fields)
    return filterset.qs
