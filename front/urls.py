from django.urls import path

from front import views

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("evidence/", views.EvidenceView.as_view(), name="evidence"),
    path(
        "projects/<uuid:project_id>/environments/<uuid:pk>/",
        views.EnvironmentDetailView.as_view(),
        name="environment-detail",
    ),
]
