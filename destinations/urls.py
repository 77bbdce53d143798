"""HTML routes of the destination pages."""

from django.urls import path

from destinations import views

urlpatterns = [
    path("destinations/", views.DestinationListView.as_view(), name="destinations-list"),
    path("destinations/new/", views.DestinationFormView.as_view(), name="destination-new"),
    path(
        "destinations/<uuid:pk>/edit/", views.DestinationFormView.as_view(), name="destination-edit"
    ),
    path(
        "destinations/<uuid:pk>/test/", views.DestinationTestView.as_view(), name="destination-test"
    ),
    path(
        "destinations/<uuid:pk>/delete/",
        views.DestinationDeleteView.as_view(),
        name="destination-delete",
    ),
]
