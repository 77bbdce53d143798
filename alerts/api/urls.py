from alerts.api.views import AlertViewSet
from api.base.routes import routes


def _view(actions):
    return lambda **kw: AlertViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes("api/backup-alerts", _view({"get": "list_page"}), "seed003-alerts"),
    *routes("api/backup-alerts/count", _view({"get": "count"}), "seed003-alert-count"),
    *routes(
        "api/backup-alerts/<str:id>/dismiss", _view({"post": "dismiss"}), "seed003-alert-dismiss"
    ),
    *routes("api/backup-alerts/<str:id>/read", _view({"post": "mark_read"}), "seed003-alert-read"),
]
