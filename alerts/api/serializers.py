from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts.models import AlertKind, NotificationChannel, Severity
from api.base.schema import enum_field
from api.base.strict import StrictInputSerializer


class Seed003AlertSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(source="kind", choices=AlertKind.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    title = serializers.CharField()
    message = serializers.CharField()
    environmentId = serializers.UUIDField(source="environment_id", allow_null=True)  # noqa: N815
    backupId = serializers.UUIDField(source="backup_id", allow_null=True)  # noqa: N815
    restoreId = serializers.UUIDField(source="restore_id", allow_null=True)  # noqa: N815
    occurrences = serializers.IntegerField()
    read = serializers.SerializerMethodField()
    dismissed = serializers.SerializerMethodField()
    resolved = serializers.SerializerMethodField()
    firstSeenAt = serializers.DateTimeField(source="first_seen_at")  # noqa: N815
    lastSeenAt = serializers.DateTimeField(source="last_seen_at")  # noqa: N815
    readAt = serializers.DateTimeField(source="read_at", allow_null=True)  # noqa: N815
    dismissedAt = serializers.DateTimeField(source="dismissed_at", allow_null=True)  # noqa: N815
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)  # noqa: N815

    def get_read(self, obj) -> bool:
        return obj.read_at is not None

    def get_dismissed(self, obj) -> bool:
        return obj.dismissed_at is not None

    def get_resolved(self, obj) -> bool:
        return obj.resolved_at is not None


class Seed003AlertCountSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Alerts neither read nor dismissed.")


# Notification channels ----------------------------------------------------------------------

MAX_RECIPIENTS = 50


class ChannelLastDeliverySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    error = serializers.CharField(help_text="Why it failed; empty when it was delivered.")


class NotificationChannelSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = enum_field("NotificationChannelKind", NotificationChannel.Kind.values)
    url = serializers.CharField(
        source="masked_url",
        help_text="Masked: the scheme (and a webhook's host) only; URLs are write-only.",
    )
    recipients = serializers.ListField(child=serializers.CharField())
    events = serializers.ListField(child=enum_field("AlertKind", AlertKind.values))
    minSeverity = enum_field("AlertSeverity", Severity.values, source="min_severity")  # noqa: N815
    sendResolved = serializers.BooleanField(source="send_resolved")  # noqa: N815
    enabled = serializers.BooleanField()
    lastDelivery = serializers.SerializerMethodField()  # noqa: N815

    @extend_schema_field(ChannelLastDeliverySerializer(allow_null=True))
    def get_lastDelivery(self, obj) -> dict | None:  # noqa: N802
        if obj.last_delivery_at is None:
            return None
        return {
            "at": obj.last_delivery_at,
            "ok": bool(obj.last_delivery_ok),
            "error": obj.last_delivery_error,
        }


def _channel_body_fields(*, partial: bool) -> dict:
    return {
        "name": serializers.CharField(max_length=200, required=not partial),
        "url": serializers.CharField(
            max_length=2000,
            required=False,
            allow_blank=True,
            help_text="Kind webhook: its http(s) URL. Kind apprise: an apprise URL "
            "(slack://…, ntfys://…, json://…). Write-only, stored encrypted.",
        ),
        "recipients": serializers.ListField(
            child=serializers.CharField(max_length=254),
            required=False,
            max_length=MAX_RECIPIENTS,
            help_text="Kind email: the addresses it is sent to.",
        ),
        "secret": serializers.CharField(
            max_length=200,
            required=False,
            allow_blank=True,
            help_text="Kind webhook: the HMAC-SHA256 key of X-Strongbox-Signature. Write-only.",
        ),
        "events": serializers.ListField(
            child=enum_field("AlertKind", AlertKind.values),
            required=False,
            max_length=len(AlertKind.values),
            help_text="The alert kinds it receives; empty or left out: all.",
        ),
        "minSeverity": enum_field(
            "AlertSeverity",
            Severity.values,
            required=False,
            help_text="The least severity it receives (default info: all).",
        ),
        "sendResolved": serializers.BooleanField(
            required=False, help_text="Also send a notice when an alert resolves (default true)."
        ),
        "enabled": serializers.BooleanField(required=False),
    }


# Create: every field, ``name`` and ``kind`` required; which of url/recipients/secret a kind
# takes is the service's check (a 400 naming the field). Update: any of them but the kind.
NotificationChannelCreateSerializer = type(
    "NotificationChannelCreateSerializer",
    (StrictInputSerializer,),
    {
        "__module__": __name__,
        "kind": enum_field("NotificationChannelKind", NotificationChannel.Kind.values),
        **_channel_body_fields(partial=False),
    },
)
NotificationChannelUpdateSerializer = type(
    "NotificationChannelUpdateSerializer",
    (StrictInputSerializer,),
    {"__module__": __name__, **_channel_body_fields(partial=True)},
)


class NotificationChannelTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField()
    statusCode = serializers.IntegerField(allow_null=True)  # noqa: N815
    at = serializers.DateTimeField()
