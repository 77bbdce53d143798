from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.base.schema import enum_field
from audit.models import ActorType, Outcome


class AuditActorSerializer(serializers.Serializer):
    type = enum_field("AuditActorTypeEnum", ActorType.values, source="actor_type")
    name = serializers.CharField(source="actor_name")


class AuditObjectSerializer(serializers.Serializer):
    type = serializers.CharField(source="object_type")
    id = serializers.CharField(source="object_id")
    name = serializers.CharField(source="object_name")


class AuditEventSerializer(serializers.Serializer):
    """One audit event; ``object`` is null for an event about no object."""

    id = serializers.UUIDField()
    at = serializers.DateTimeField()
    actor = AuditActorSerializer(source="*")
    action = serializers.CharField()
    object = serializers.SerializerMethodField()
    ip = serializers.IPAddressField(allow_null=True)
    outcome = enum_field("AuditOutcomeEnum", Outcome.values)
    details = serializers.DictField(help_text="What changed or how (secrets masked)")

    @extend_schema_field(AuditObjectSerializer(allow_null=True))
    def get_object(self, event):
        return AuditObjectSerializer(event).data if event.object_type else None
