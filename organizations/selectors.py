"""Reads of the tenancy model."""

from django.db.models import Prefetch, QuerySet

from organizations.models import Environment, Organisation, Project


def projects_with_environments(*, organisation: Organisation) -> QuerySet[Project]:
    return (
        Project.objects.filter(organisation=organisation)
        .prefetch_related(
            Prefetch(
                "environments",
                queryset=Environment.objects.prefetch_related("databases").order_by("name"),
            )
        )
        .order_by("name")
    )
