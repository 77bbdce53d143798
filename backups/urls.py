"""HTML routes of the backup pages."""

from django.urls import path

from backups import views

urlpatterns = [
    path(
        "environments/<uuid:environment_id>/backups/new/",
        views.BackupTriggerView.as_view(),
        name="backup-trigger",
    ),
    path("databases/<uuid:pk>/backup/", views.DatabaseBackupView.as_view(), name="database-backup"),
    path("backups/<uuid:pk>/retry/", views.BackupRetryView.as_view(), name="backup-retry"),
    path("backups/<uuid:pk>/", views.BackupDetailView.as_view(), name="backup-detail"),
    path("backups/<uuid:pk>/delete/", views.BackupDeleteView.as_view(), name="backup-delete"),
    path("backups/<uuid:pk>/abort/", views.BackupAbortView.as_view(), name="backup-abort"),
    path(
        "backups/<uuid:pk>/download/",
        views.BackupDownloadPageView.as_view(),
        name="backup-download-page",
    ),
    path("settings/encryption/", views.AgeSettingsView.as_view(), name="encryption-settings"),
]
