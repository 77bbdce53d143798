from api.base.routes import routes
from schedules.api.views import ScheduleViewSet


def _view(actions):
    return lambda **kw: ScheduleViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes("api/backups/cron-presets", _view({"get": "cron_presets"}), "seed003-cron"),
    *routes(
        "api/environments/<str:env_id>/backup-schedule",
        _view({"get": "retrieve", "put": "upsert"}),
        "seed003-backup-schedule",
    ),
    *routes(
        "api/environments/<str:env_id>/backup-schedule/retention-preview",
        _view({"post": "retention_preview"}),
        "seed003-retention-preview",
    ),
]
