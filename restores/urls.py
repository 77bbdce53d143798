"""HTML routes of the restore pages."""

from django.urls import path

from restores import views

urlpatterns = [
    path("backups/<uuid:pk>/restore/", views.RestoreNewView.as_view(), name="restore-new"),
    path("restores/", views.RestoreListView.as_view(), name="restores-list"),
    path("restores/<uuid:pk>/", views.RestoreDetailView.as_view(), name="restore-detail"),
    path("restores/<uuid:pk>/undo/", views.RestoreUndoView.as_view(), name="restore-undo"),
]
