"""HTML route of the audit log."""

from django.urls import path

from audit import views

urlpatterns = [path("audit/", views.AuditLogView.as_view(), name="audit-log")]
