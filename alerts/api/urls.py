from alerts.api.channels import NotificationChannelViewSet
from alerts.api.views import AlertViewSet
from api.base.routes import routes


def _view(actions):
    return lambda **kw: AlertViewSet.as_view(actions, **kw)


def _channels(actions):
    return lambda **kw: NotificationChannelViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes("api/backup-alerts", _view({"get": "list_page"}), "seed003-alerts"),
    *routes("api/backup-alerts/count", _view({"get": "count"}), "seed003-alert-count"),
    *routes(
        "api/backup-alerts/<str:id>/dismiss", _view({"post": "dismiss"}), "seed003-alert-dismiss"
    ),
    *routes("api/backup-alerts/<str:id>/read", _view({"post": "mark_read"}), "seed003-alert-read"),
    *routes(
        "api/notification-channels",
        _channels({"get": "list_page", "post": "create"}),
        "api-notification-channels",
    ),
    *routes(
        "api/notification-channels/<str:id>",
        _channels({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        "api-notification-channel",
    ),
    *routes(
        "api/notification-channels/<str:id>/test",
        _channels({"post": "test"}),
        "api-notification-channel-test",
    ),
]
