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
]
