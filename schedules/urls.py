"""HTML routes of the schedule editor and the retention pages."""

from django.urls import path

from schedules import views

urlpatterns = [
    path(
        "environments/<uuid:environment_id>/schedule/",
        views.ScheduleEditView.as_view(),
        name="schedule-edit",
    ),
    path(
        "environments/<uuid:environment_id>/schedule/next-runs/",
        views.ScheduleNextRunsView.as_view(),
        name="schedule-next-runs",
    ),
    path(
        "environments/<uuid:environment_id>/retention/",
        views.RetentionPreviewView.as_view(),
        name="retention-preview",
    ),
    path(
        "environments/<uuid:environment_id>/retention/apply/",
        views.RetentionApplyView.as_view(),
        name="retention-apply",
    ),
]
