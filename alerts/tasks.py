"""django-q2 entry points of the alerts app: they take ids and call one service."""

from alerts.models import Alert, DeliveryEvent, NotificationChannel
from alerts.services import notification_deliver


def deliver_notification(
    channel_id: str, alert_id: str, attempt: int = 1, event: str = DeliveryEvent.RAISED
) -> bool | None:
    """Deliver one notice (``raised`` or ``resolved``) of one alert through one channel
    (attempt ``attempt``); retries reschedule this."""
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    alert = Alert.objects.filter(pk=alert_id).first()
    if channel is None or alert is None or event not in DeliveryEvent.values:
        return None  # deleted since it was enqueued: nothing to tell anyone
    delivery = notification_deliver(channel=channel, alert=alert, attempt=attempt, event=event)
    return None if delivery is None else delivery.ok
