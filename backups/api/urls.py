"""The backup list dialects, each at exactly the path its document gives (with or
without a trailing slash)."""

from django.urls import re_path

from backups.api.dialects import seed000

urlpatterns = [
    re_path(
        r"^api/v3/organizations/(?P<organisation>[^/]+)/applications/(?P<application>[^/]+)"
        r"/environments/(?P<environment>[^/]+)/backups/(?P<type>[^/]+)/?$",
        seed000.Seed000BackupListView.as_view(),
        name="seed000-environment-backups",
    ),
]
