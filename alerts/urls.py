"""HTML routes of the alerts inbox."""

from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.AlertInboxView.as_view(), name="alerts-inbox"),
    path("alerts/<uuid:pk>/read/", views.AlertReadView.as_view(), name="alert-read"),
    path("alerts/<uuid:pk>/dismiss/", views.AlertDismissView.as_view(), name="alert-dismiss"),
]
