from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from front import health

urlpatterns = [
    path("admin/", admin.site.urls),
    # Tools that ask for /favicon.ico get the page's icon (base.html links it too).
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", health.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("config.api_urls")),
    path("", include("organizations.urls")),
    path("", include("backups.urls")),
    path("", include("alerts.urls")),
    path("", include("schedules.urls")),
    path("", include("destinations.urls")),
    path("", include("restores.urls")),
    path("", include("audit.urls")),
    path("", include("front.urls")),
]

if settings.STRONGBOX_SERVE_STATIC and not settings.DEBUG:
    urlpatterns += [
        re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
    ]
