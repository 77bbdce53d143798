"""HTML routes of the alerts inbox and the notification channel pages."""

from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.AlertInboxView.as_view(), name="alerts-inbox"),
    path("alerts/<uuid:pk>/read/", views.AlertReadView.as_view(), name="alert-read"),
    path("alerts/<uuid:pk>/dismiss/", views.AlertDismissView.as_view(), name="alert-dismiss"),
    path("notifications/", views.ChannelListView.as_view(), name="notification-channels"),
    path("notifications/new/", views.ChannelFormView.as_view(), name="notification-channel-new"),
    path(
        "notifications/<uuid:pk>/",
        views.ChannelFormView.as_view(),
        name="notification-channel-edit",
    ),
    path(
        "notifications/<uuid:pk>/test/",
        views.ChannelTestView.as_view(),
        name="notification-channel-test",
    ),
    path(
        "notifications/<uuid:pk>/delete/",
        views.ChannelDeleteView.as_view(),
        name="notification-channel-delete",
    ),
]
