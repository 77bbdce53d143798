"""The one audit event FilterSet, used by the API list and the page.

``action``: an action name or a family (``backup.*``); ``actor``: an actor's name, or
``user:<name>`` / ``token:<name>`` / ``system`` for one kind of actor; ``since``: an ISO 8601
date-time (or date), events at or after it. A bad value is an ``InvalidInput`` naming
the parameter, never an empty list.
"""

from __future__ import annotations

from collections.abc import Mapping

import django_filters
from django.db.models import QuerySet

from audit.actions import action_problem
from audit.models import ActorType, AuditEvent
from config.errors import InvalidInput
from config.filters import UtcIsoDateTimeFilter

FILTER_NAMES = ("action", "actor", "since")
DATETIME_ERROR = "Enter an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z."
FILTER_HELP = {
    "action": "Only this action (e.g. `backup.delete`), or a family of them (`backup.*`)",
    "actor": "Only events of this actor: a user's or token's name, or `user:<name>`, "
    "`token:<name>`, `system`",
    "since": "Only events at or after this ISO 8601 date-time",
}


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(method="filter_action")
    actor = django_filters.CharFilter(method="filter_actor", max_length=210)
    since = UtcIsoDateTimeFilter(
        field_name="at", lookup_expr="gte", error_messages={"invalid": DATETIME_ERROR}
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def filter_action(self, queryset, name, value):
        if value.endswith(".*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)

    def filter_actor(self, queryset, name, value):
        kind, _, rest = value.partition(":")
        if kind in (ActorType.USER, ActorType.TOKEN) and rest:
            return queryset.filter(actor_type=kind, actor_name=rest)
        if value == ActorType.SYSTEM:
            return queryset.filter(actor_type=ActorType.SYSTEM)
        return queryset.filter(actor_name=value)


def audit_events_filter(*, queryset: QuerySet[AuditEvent], params: Mapping) -> QuerySet:
    data = {}
    for name in FILTER_NAMES:
        value = params.get(name)
        if value is None:
            continue
        if value == "":
            raise InvalidInput(f"{name}: May not be empty.", fields={name: ["May not be empty."]})
        data[name] = value
    if "action" in data and (problem := action_problem(data["action"])):
        raise InvalidInput(f"action: {problem}", fields={"action": [problem]})
    filterset = AuditEventFilterSet(data=data, queryset=queryset)
    if not filterset.is_valid():
        fields = {name: [str(m) for m in messages] for name, messages in filterset.errors.items()}
        message = " ".join(f"{param}: {' '.join(msgs)}" for param, msgs in fields.items())
        raise InvalidInput(message, fields=fields)
    return filterset.qs
