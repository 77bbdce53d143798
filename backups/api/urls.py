from api.base.routes import routes
from backups.api.views import (
    AgeSettingsViewSet,
    BackupDownloadView,
    BackupProgressView,
    Seed003BackupViewSet,
)


def _view(actions):
    return lambda **kw: Seed003BackupViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes(
        "api/environments/<str:env_id>/backups",
        _view({"get": "environment_list", "post": "create"}),
        "seed003-environment-backups",
    ),
    *routes(
        "api/projects/<str:projectId>/backups",
        _view({"get": "project_list"}),
        "seed003-project-backups",
    ),
    *routes(
        "api/backups/<str:id>",
        _view({"get": "retrieve", "delete": "destroy"}),
        "seed003-backup",
    ),
    *routes("api/backups/<str:id>/progress", BackupProgressView.as_view, "seed003-sse"),
    *routes("api/backups/<str:id>/download", BackupDownloadView.as_view, "backup-download"),
    *routes(
        "api/organizations/<str:id>/encryption",
        lambda **kw: AgeSettingsViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update"}, **kw
        ),
        "api-organization-encryption",
    ),
]
