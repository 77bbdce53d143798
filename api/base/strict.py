"""Request bodies taken exactly as the schema states them.

DRF is lenient by default: a field it does not know is silently dropped (so a misspelt
``isDefualt`` changes nothing and says nothing), ``0`` and ``"yes"`` pass as booleans, ``"5"``
as an integer and ``5`` as a string. The schema says otherwise (``additionalProperties:
false``, one JSON type per field), and a client written from it should learn of a mistake
from a 400 naming the field, not from a change that did not happen.

``StrictInputSerializer`` is the base of every writable body serializer: it refuses unknown
fields (each named, "Unknown field.") and values of another JSON type than the field's
("Expected a boolean.") before DRF's own validation. drf-spectacular documents it so
(``additionalProperties: false`` through ``APIViewSet``'s schema class). No library of the
DRF ecosystem does this (``rest_framework`` has no strict mode), so it is these few lines.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

# The JSON type each DRF field takes, most specific first (a SlugField is a CharField).
_JSON_TYPES: list[tuple[type[serializers.Field], tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
    (serializers.CharField, (str,), "a string"),
    (serializers.UUIDField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
    (serializers.DateField, (str,), "a string"),
    (serializers.ListField, (list,), "an array"),
    (serializers.ListSerializer, (list,), "an array"),
    (serializers.ManyRelatedField, (list,), "an array"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.Serializer, (dict,), "an object"),
]

UNKNOWN_FIELD = "Unknown field."


def json_type_problem(field: serializers.Field, value) -> str | None:
    """Why ``value`` is not of ``field``'s JSON type, or None (null is the field's to judge)."""
    if value is None:
        return None
    if wanted := getattr(field, "json_types", None):
        # A field that says which JSON types it takes (``destinations``' text-or-integer).
        ok = isinstance(value, wanted) and not _is_bool_for(value, wanted)
        return None if ok else "Expected one of its documented types."
    if isinstance(field, serializers.ChoiceField) and not isinstance(
        field, serializers.MultipleChoiceField
    ):
        kinds = {type(choice) for choice in field.choices}
        wanted = (str,) if kinds <= {str} else tuple(kinds)
        name = "a string" if wanted == (str,) else "one of the choices"
        return (
            None
            if isinstance(value, wanted) and not _is_bool_for(value, wanted)
            else (f"Expected {name}.")
        )
    for field_class, wanted, name in _JSON_TYPES:
        if isinstance(field, field_class):
            if isinstance(value, wanted) and not _is_bool_for(value, wanted):
                return None
            return f"Expected {name}."
    return None


def _is_bool_for(value, wanted: tuple[type, ...]) -> bool:
    # bool is an int in Python, never in JSON.
    return isinstance(value, bool) and bool not in wanted


class StrictInputSerializer(serializers.Serializer):
    # A request body: unknown fields and values of the wrong JSON type are a 400 naming
    # them. Nested serializers check their own values when they are strict too; the items
    # of a ListField and the values of a DictField are checked here. (Comments, not a
    # docstring: drf-spectacular would make it every body's description.)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            problems = self._unknown_fields(data) | self._type_problems(data)
            if problems:
                raise serializers.ValidationError(problems)
        return super().to_internal_value(data)

    def _unknown_fields(self, data: Mapping) -> dict[str, list[str]]:
        writable = {name for name, field in self.fields.items() if not field.read_only}
        return {str(name): [UNKNOWN_FIELD] for name in data if name not in writable}

    def _type_problems(self, data: Mapping) -> dict[str, list]:
        problems: dict[str, list] = {}
        for name, field in self.fields.items():
            if field.read_only or name not in data:
                continue
            value = data[name]
            problem = json_type_problem(field, value)
            if (
                problem is None
                and isinstance(field, serializers.ListField)
                and isinstance(value, list)
            ):
                problem = next(
                    (p for p in (json_type_problem(field.child, item) for item in value) if p),
                    None,
                )
            if (
                problem is None
                and isinstance(field, serializers.DictField)
                and isinstance(value, dict)
            ):
                problem = next(
                    (p for p in (json_type_problem(field.child, v) for v in value.values()) if p),
                    None,
                )
            if problem:
                problems[name] = [problem]
        return problems


EMPTY_VALUE = "May not be empty."


class StrictQuerySerializer(serializers.Serializer):
    # Query parameters: an empty value of a parameter whose schema has no empty value (a
    # UUID, an enum, a date-time, a token of at least one character: ``startId=``,
    # ``cursor=``) is a 400 naming it. DRF reads a query string as a form, where an empty
    # optional value means "not given", so a client's bug would go unheard. Paging sizes and
    # numbers keep their documented "empty means the default" (``api.base.pagination``).

    def to_internal_value(self, data):
        empty = {
            name: [EMPTY_VALUE]
            for name, field in self.fields.items()
            if name in data and data.get(name) == "" and not empty_means_default(field)
        }
        if empty:
            raise serializers.ValidationError(empty)
        return super().to_internal_value(data)


def empty_means_default(field: serializers.Field) -> bool:
    if isinstance(field, serializers.IntegerField):
        return True
    return isinstance(field, serializers.CharField) and field.allow_blank
