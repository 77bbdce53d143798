"""The backup list dialects, each at exactly the path its document gives.

Both spellings are served: the documented one (in the schema) and the same with a
trailing slash (left out of the schema so each operation appears once).
"""

from django.urls import path

from backups.api.dialects import seed000, seed001, seed002, seed004


def _with_and_without_slash(route: str, view, name: str):
    return [
        path(route, view.as_view(), name=name),
        path(f"{route}/", view.as_view(schema=None)),
    ]


urlpatterns = [
    *_with_and_without_slash(
        "api/v3/organizations/<str:organisation>/applications/<str:application>"
        "/environments/<str:environment>/backups/<str:type>",
        seed000.Seed000BackupListView,
        "seed000-environment-backups",
    ),
    *_with_and_without_slash(
        "v1/backup-destinations/<str:backupDestinationId>/backups",
        seed001.Seed001DestinationBackupsView,
        "seed001-destination-backups",
    ),
    *_with_and_without_slash(
        "v1/database-backups", seed002.Seed002DatabaseBackupListView, "seed002-database-backups"
    ),
    *_with_and_without_slash(
        "database/<str:databaseId>/backup",
        seed004.Seed004DatabaseBackupsView,
        "seed004-database-backups",
    ),
]
