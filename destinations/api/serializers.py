"""Destinations in the API. Secret parameters are write-only: the API says which are set
(``secretParameters``), never their values."""

from rest_framework import serializers

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


def _parameters_help() -> str:
    lines = []
    for kind, backend in sorted(BACKENDS.items()):
        names = ", ".join(
            p.name
            + (f" ({p.syntax})" if p.syntax else "")
            + (" (required)" if p.required else "")
            + (" (secret)" if p.name in backend.sensitive_parameters else "")
            for p in backend.parameters
        )
        lines.append(f"{kind}: {names}")
    return "Parameters of the kind. " + "; ".join(lines) + ". Secret ones are write-only."


class DestinationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=DestinationKind.choices)
    parameters = serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True),
        required=False,
        default=dict,
        help_text=_parameters_help(),
    )
    isDefault = serializers.BooleanField(required=False, default=False)  # noqa: N815


class DestinationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    parameters = serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True),
        required=False,
        help_text="Merged into the current parameters: a parameter left out keeps its value; "
        "null or an empty string removes it. " + _parameters_help(),
    )
    isDefault = serializers.BooleanField(required=False)  # noqa: N815


class DestinationTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    step = serializers.CharField(
        allow_null=True, help_text="Where it failed: connect, write, read, compare or delete."
    )
    durationMs = serializers.IntegerField()  # noqa: N815
    lastCheckedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
