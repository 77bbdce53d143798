"""Destinations in the API. Secret parameters are write-only: the API says which are set
(``secretParameters``), never their values.

The bodies that write a destination are built from its backend's declared parameters, one
per kind, so the schema and the validation cannot drift: required S3 parameters are required
in both, an unknown parameter is refused by both.
"""

from collections.abc import Mapping

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from destinations.backends import BACKENDS, backend_for
from destinations.models import DestinationKind


class DestinationParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    required = serializers.BooleanField()
    sensitive = serializers.BooleanField()
    help = serializers.CharField()


class DestinationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=DestinationKind.choices)
    parameters = serializers.DictField(
        source="config", child=serializers.CharField(), help_text="Non-secret parameters."
    )
    secretParameters = serializers.SerializerMethodField(  # noqa: N815
        help_text="Names of the secret parameters that are set (values are never returned)."
    )
    location = serializers.SerializerMethodField()
    isDefault = serializers.BooleanField(source="is_default")  # noqa: N815
    lastCheckedAt = serializers.DateTimeField(source="last_checked_at", allow_null=True)  # noqa: N815
    lastCheckError = serializers.CharField(source="last_check_error")  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815

    def get_secretParameters(self, obj) -> list[str]:  # noqa: N802
        return sorted(name for name, value in obj.secrets.items() if value)

    def get_location(self, obj) -> str:
        return backend_for(obj).describe()


def _parameter_help(backend, parameter) -> str:
    notes = [parameter.help]
    if parameter.syntax:
        notes.append(f"Syntax: {parameter.syntax}.")
    if parameter.name in backend.sensitive_parameters:
        notes.append("Secret: write-only, stored encrypted.")
    return " ".join(note for note in notes if note)


class _TextOrIntegerField(serializers.CharField):
    """A parameter that also takes a JSON integer (``part_size_mb: 64``), kept as its text;
    its range is the backend's to check."""

    json_types = (str, int)

    def to_internal_value(self, data):
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)
        return super().to_internal_value(data)


def _parameter_field(backend, parameter, *, partial: bool) -> serializers.Field:
    """One declared parameter: text, or text or an integer in its range."""
    optional = partial or not parameter.required
    kwargs = {
        "required": not optional,
        "allow_blank": optional,
        "allow_null": optional,
        "help_text": _parameter_help(backend, parameter),
    }
    if parameter.integer_range is None:
        return serializers.CharField(**kwargs)
    low, high = parameter.integer_range
    schema = {
        "oneOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": "^[0-9]+$"},
        ],
        "nullable": optional,
        "description": kwargs["help_text"],
    }
    field_class = extend_schema_field(schema)(type("_Field", (_TextOrIntegerField,), {}))
    return field_class(**kwargs)


def _parameters_serializer(kind: str, *, partial: bool) -> type[StrictInputSerializer]:
    """The ``parameters`` object of one kind, from what its backend declares.

    On create the required ones are required; on update each may be left out (it keeps its
    value) or be null or empty (it is removed).
    """
    backend = BACKENDS[kind]
    fields = {p.name: _parameter_field(backend, p, partial=partial) for p in backend.parameters}
    name = f"{kind.title()}Destination{'Update' if partial else ''}Parameters"
    return type(name, (StrictInputSerializer,), {"__module__": __name__, **fields})


def _create_serializer(kind: str) -> type[StrictInputSerializer]:
    """The create body of one kind."""
    parameters = _parameters_serializer(kind, partial=False)
    fields = {
        "name": serializers.CharField(max_length=200),
        "kind": serializers.ChoiceField(choices=[kind]),
        "parameters": parameters(required=any(p.required for p in BACKENDS[kind].parameters)),
        "isDefault": serializers.BooleanField(required=False, default=False),
    }
    name = f"{kind.title()}DestinationCreate"
    return type(name, (StrictInputSerializer,), {"__module__": __name__, **fields})


CREATE_SERIALIZERS = {kind: _create_serializer(kind) for kind in sorted(BACKENDS)}
UPDATE_PARAMETERS = {kind: _parameters_serializer(kind, partial=True) for kind in sorted(BACKENDS)}

# The create body as the schema states it: one component per kind, told apart by ``kind``.
DestinationCreateDocumented = PolymorphicProxySerializer(
    component_name="DestinationCreate",
    serializers=CREATE_SERIALIZERS,
    resource_type_field_name="kind",
)


class DestinationCreateSerializer(serializers.Serializer):
    """Validates a create body with the body of the kind it names (``CREATE_SERIALIZERS``,
    what the schema documents), so the required parameters, the known ones and their
    types are the same in both."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # DRF's "expected a dictionary"
        kind = data.get("kind")
        body = CREATE_SERIALIZERS.get(kind) if isinstance(kind, str) else None
        if body is None:
            kinds = ", ".join(CREATE_SERIALIZERS)
            raise serializers.ValidationError({"kind": [f"Must be one of: {kinds}."]})
        inner = body(data=data)
        inner.is_valid(raise_exception=True)
        return inner.validated_data


# Every kind's parameters, for an update, which does not name the kind: the destination's
# kind decides at run time (``UPDATE_PARAMETERS``), another kind's parameter is a 400.
_UPDATE_PARAMETERS_SCHEMA = {
    "type": "object",
    "properties": {
        p.name: {
            "type": "string",
            "nullable": True,
            "description": f"{kind}: {_parameter_help(backend, p)}".strip(),
        }
        for kind, backend in sorted(BACKENDS.items())
        for p in backend.parameters
    },
    "additionalProperties": False,
}


@extend_schema_field(_UPDATE_PARAMETERS_SCHEMA)
class _UpdateParametersField(serializers.DictField):
    pass


class DestinationUpdateSerializer(StrictInputSerializer):
    # ``context={"kind": …}``: the destination's kind, whose parameters ``parameters`` takes.

    name = serializers.CharField(max_length=200, required=False)
    parameters = _UpdateParametersField(
        required=False,
        help_text="Merged into the current parameters: a parameter left out keeps its value; "
        "null or an empty string removes it. Only the parameters of the destination's kind.",
    )
    isDefault = serializers.BooleanField(required=False)  # noqa: N815

    def get_fields(self):
        fields = super().get_fields()
        kind = self.context.get("kind")
        if kind in UPDATE_PARAMETERS:
            fields["parameters"] = UPDATE_PARAMETERS[kind](required=False)
        return fields


class DestinationTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    step = serializers.CharField(
        allow_null=True, help_text="Where it failed: connect, write, read, compare or delete."
    )
    durationMs = serializers.IntegerField()  # noqa: N815
    lastCheckedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
