"""Every API route, each dialect at exactly the path its document gives."""

from django.urls import include, path

urlpatterns = [
    path("", include("organizations.api.urls")),
    path("", include("backups.api.dialects.seed003")),
    path("", include("destinations.api.urls")),
    path("", include("schedules.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("restores.api.urls")),
    path("", include("backups.api.urls")),
]
