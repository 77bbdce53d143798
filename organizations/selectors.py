"""Reads of the tenancy model."""

import uuid

from django.db.models import Prefetch, Q, QuerySet

from config.errors import InvalidInput, NotFound
from organizations.models import Database, Environment, Organisation, Project


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


# --- what an operator names on the command line ----------------------------------------------


def _one(found: list, what: str, reference: str):
    if not found:
        raise NotFound(f"No {what} {reference!r} (give its id, its name or its slug).")
    if len(found) > 1:
        where = ", ".join(f"{item.pk} ({_place(item)})" for item in found)
        raise InvalidInput(f"Several {what}s are called {reference!r}: {where}; give the id.")
    return found[0]


def _place(item) -> str:
    environment = getattr(item, "environment", item)
    project = environment.project
    return f"{project.organisation.slug}/{project.slug}/{environment.slug}"


def _as_uuid(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


def environment_by_reference(reference: str) -> Environment:
    """An environment by its id, ``organisation/project/environment`` slugs,
    ``project/environment``, or its own slug or name when that names one environment."""
    queryset = Environment.objects.select_related("project__organisation")
    if (pk := _as_uuid(reference)) is not None:
        return _one(list(queryset.filter(pk=pk)), "environment", reference)
    parts = reference.strip("/").split("/")
    if len(parts) == 3:
        queryset = queryset.filter(
            project__organisation__slug=parts[0], project__slug=parts[1], slug=parts[2]
        )
    elif len(parts) == 2:
        queryset = queryset.filter(project__slug=parts[0], slug=parts[1])
    else:
        queryset = queryset.filter(Q(slug=reference) | Q(name=reference))
    return _one(list(queryset), "environment", reference)


def database_by_reference(reference: str) -> Database:
    """A database by its id, ``organisation/project/environment/database`` slugs, or its own
    name or slug when that names one database."""
    queryset = Database.objects.select_related("environment__project__organisation")
    if (pk := _as_uuid(reference)) is not None:
        return _one(list(queryset.filter(pk=pk)), "database", reference)
    parts = reference.strip("/").split("/")
    if len(parts) == 4:
        queryset = queryset.filter(
            environment__project__organisation__slug=parts[0],
            environment__project__slug=parts[1],
            environment__slug=parts[2],
            slug=parts[3],
        )
    else:
        queryset = queryset.filter(name=reference) or queryset.filter(slug=reference)
    return _one(list(queryset), "database", reference)
