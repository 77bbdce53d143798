"""The backup list dialects, each at exactly the path its document gives (with or
without a trailing slash)."""

from django.urls import re_path

from backups.api.dialects import seed000, seed001, seed002, seed004

urlpatterns = [
    re_path(
        r"^api/v3/organizations/(?P<organisation>[^/]+)/applications/(?P<application>[^/]+)"
        r"/environments/(?P<environment>[^/]+)/backups/(?P<type>[^/]+)/?$",
        seed000.Seed000BackupListView.as_view(),
        name="seed000-environment-backups",
    ),
    re_path(
        r"^v1/backup-destinations/(?P<backupDestinationId>[^/]+)/backups/?$",
        seed001.Seed001DestinationBackupsView.as_view(),
        name="seed001-destination-backups",
    ),
    re_path(
        r"^v1/database-backups/?$",
        seed002.Seed002DatabaseBackupListView.as_view(),
        name="seed002-database-backups",
    ),
    re_path(
        r"^database/(?P<databaseId>[^/]+)/backup/?$",
        seed004.Seed004DatabaseBackupsView.as_view(),
        name="seed004-database-backups",
    ),
]
