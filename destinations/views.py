"""Destination pages: the list with a connection test (operators), and create, edit
and delete (admins). Every write is one call of ``destinations.services``."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import TemplateView

from backups.selectors import destination_get, destinations_with_usage
from config.errors import InvalidInput
from destinations.backends import backend_for
from destinations.forms import DestinationForm
from destinations.services import (
    destination_create,
    destination_delete,
    destination_test,
    destination_update,
)
from organizations.models import Role
from organizations.pages import TenantAction, TenantPage


class DestinationListView(TenantPage, TemplateView):
    template_name = "destinations/list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        destinations = list(destinations_with_usage(organisation=self.organisation))
        for destination in destinations:
            destination.where = backend_for(destination).describe()
        context["destinations"] = destinations
        return context


class DestinationFormView(TenantPage, TemplateView):
    """Create (no ``pk``) or edit a destination."""

    template_name = "destinations/form.html"
    required_role = Role.ADMIN

    def destination(self):
        if "pk" not in self.kwargs:
            return None
        return destination_get(organisation=self.organisation, reference=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        destination = self.destination()
        context["destination"] = destination
        context["form"] = kwargs.get("form") or DestinationForm(destination=destination)
        return context

    def post(self, request, *args, **kwargs):
        destination = self.destination()
        form = DestinationForm(request.POST, destination=destination)
        if form.is_valid():
            try:
                if destination is None:
                    destination = destination_create(
                        organisation=self.organisation,
                        name=form.cleaned_data["name"],
                        kind=form.cleaned_data["kind"],
                        parameters=form.parameters(),
                        is_default=form.cleaned_data["is_default"],
                    )
                    messages.success(request, f"Destination “{destination.name}” created.")
                else:
                    destination_update(
                        destination=destination,
                        name=form.cleaned_data["name"],
                        parameters=form.parameters(),
                        is_default=form.cleaned_data["is_default"],
                    )
                    messages.success(request, f"Destination “{destination.name}” saved.")
            except InvalidInput as exc:
                form.add_service_errors(exc.fields, exc.message)
            else:
                return redirect("destinations-list")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class DestinationTestView(TenantAction):
    """Write, read back and delete a probe object in the destination."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        destination = destination_get(organisation=self.organisation, reference=kwargs["pk"])
        result = destination_test(destination=destination)
        if not result.ok:
            raise InvalidInput(f"{destination.name}: {result.message}")
        return f"{destination.name}: {result.message} ({result.duration_ms} ms)"

    def success_url(self, **kwargs) -> str:
        return reverse("destinations-list")


class DestinationDeleteView(TenantAction):
    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        destination = destination_get(organisation=self.organisation, reference=kwargs["pk"])
        destination_delete(destination=destination)
        return f"Destination “{destination.name}” deleted."

    def success_url(self, **kwargs) -> str:
        return reverse("destinations-list")
