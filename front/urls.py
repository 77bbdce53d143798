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
    path("projects/<uuid:pk>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path(
        "environments/<uuid:environment_id>/databases/new/",
        views.DatabaseFormView.as_view(),
        name="database-new",
    ),
    path("databases/<uuid:pk>/", views.DatabaseDetailView.as_view(), name="database-detail"),
    path("databases/<uuid:pk>/edit/", views.DatabaseFormView.as_view(), name="database-edit"),
    path("databases/<uuid:pk>/test/", views.DatabaseTestView.as_view(), name="database-test"),
]
