"""django-q2 entry points of the alerts app: they take ids and call one service."""

from alerts.models import Alert, NotificationChannel
from alerts.services import notification_deliver


def deliver_notification(channel_id: str, alert_id: str, attempt: int = 1) -> bool | None:
    """Deliver one alert through one channel (attempt ``attempt``); retries reschedule this."""
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    alert = Alert.objects.filter(pk=alert_id).first()
    if channel is None or alert is None:
        return None  # deleted since it was enqueued: nothing to tell anyone
    delivery = notification_deliver(channel=channel, alert=alert, attempt=attempt)
    return None if delivery is None else delivery.ok
