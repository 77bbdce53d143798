from django.contrib.auth import views as auth_views
from django.urls import include, path

from organizations import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("login/code/", views.SignInCodeView.as_view(), name="login-code"),
    path("account/two-factor/", views.TwoFactorView.as_view(), name="two-factor"),
    path("settings/security/", views.SecuritySettingsView.as_view(), name="security-settings"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oidc/", include("organizations.oidc")),
    path("organisations/switch/", views.switch_organisation, name="switch-organisation"),
    path("settings/tokens/", views.ApiTokensView.as_view(), name="api-tokens"),
    path(
        "settings/tokens/<uuid:pk>/revoke/",
        views.ApiTokenRevokeView.as_view(),
        name="api-token-revoke",
    ),
    path("projects/new/", views.ProjectCreateView.as_view(), name="project-new"),
    path("projects/<uuid:pk>/edit/", views.ProjectEditView.as_view(), name="project-edit"),
    path("projects/<uuid:pk>/delete/", views.ProjectDeleteView.as_view(), name="project-delete"),
    path(
        "projects/<uuid:project_id>/environments/new/",
        views.EnvironmentCreateView.as_view(),
        name="environment-new",
    ),
    path(
        "environments/<uuid:pk>/edit/", views.EnvironmentEditView.as_view(), name="environment-edit"
    ),
    path(
        "environments/<uuid:pk>/delete/",
        views.EnvironmentDeleteView.as_view(),
        name="environment-delete",
    ),
    path("databases/<uuid:pk>/delete/", views.DatabaseDeleteView.as_view(), name="database-delete"),
    path("settings/members/", views.MembersView.as_view(), name="members"),
    path("settings/members/<uuid:pk>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path(
        "settings/members/<uuid:pk>/remove/",
        views.MemberRemoveView.as_view(),
        name="member-remove",
    ),
]
