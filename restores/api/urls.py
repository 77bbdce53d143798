from api.base.routes import routes
from restores.api.views import BackupRestoreProgressView, RestoreProgressView, RestoreViewSet


def _view(actions):
    return lambda **kw: RestoreViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes("api/backups/<str:id>/restore", _view({"post": "create"}), "seed003-restore"),
    *routes("api/backups/<str:id>/restore-plan", _view({"post": "plan"}), "restore-plan"),
    *routes("api/environments/<str:env_id>/pitr", _view({"get": "pitr"}), "seed003-pitr"),
    *routes(
        "api/environments/<str:environmentId>/restore-logs",
        _view({"get": "restore_logs"}),
        "seed003-restore-logs",
    ),
    *routes("api/restores/<str:id>", _view({"get": "retrieve"}), "restore"),
    *routes(
        "api/backups/<str:id>/restore/progress",
        BackupRestoreProgressView.as_view,
        "seed003-restore-sse",
    ),
    *routes("api/restores/<str:id>/progress", RestoreProgressView.as_view, "restore-sse"),
]
