from django.contrib.auth import views as auth_views
from django.urls import include, path

from organizations import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
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
