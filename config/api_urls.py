"""Every API route, each dialect at exactly the path its document gives."""

from django.urls import include, path

urlpatterns = [
    path("", include("organizations.api.urls")),
    # Before the backups' routes: api/backups/cron-presets would otherwise be taken for a
    # backup id by api/backups/<id>.
    path("", include("schedules.api.urls")),
    path("", include("backups.api.urls")),
    path("", include("destinations.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("restores.api.urls")),
    # Composed of several apps' data (front may import any app).
    path("", include("front.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("drills.api.urls")),
    path("", include("api.dialects.urls")),
]
