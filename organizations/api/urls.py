from django.urls import path

from organizations.api import views

urlpatterns = [
    path("api/auth/token", views.ObtainTokenView.as_view(), name="api-auth-token"),
    path("api/auth/token/", views.ObtainTokenView.as_view()),
]
