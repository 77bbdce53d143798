"""Embedded profile: SQLite and django-q2's ORM broker, nothing to install."""

from .base import *  # noqa: F403
