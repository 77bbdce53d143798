"""factory-boy factories for every model."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.models import Alert, AlertKind, NotificationChannel
from backups.models import Backup, BackupCopy, BackupKind, BackupMethod, BackupStatus, CopyStatus
from destinations.models import Destination, DestinationKind
from organizations.models import Database, Environment, Membership, Organisation, Project, Role
from restores.models import Restore
from schedules.models import IntervalRule, Schedule


def _tenant_path(organisation, *parts):
    # Imported late: that module is a pytest plugin, which pytest must import (and rewrite) first.
    from tests.fixtures.tenants import tenant_path

    return tenant_path(organisation, *parts)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("password")


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Organisation {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = Role.VIEWER


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Environment {n}")
    slug = factory.Sequence(lambda n: f"env-{n}")


class DatabaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Database

    environment = factory.SubFactory(EnvironmentFactory)
    name = factory.Sequence(lambda n: f"Database {n}")
    slug = factory.Sequence(lambda n: f"db-{n}")
    engine = "sqlite"
    # Inside the organisation's own directory of the tenant root, as the path rules require.
    database_name = factory.LazyAttributeSequence(
        lambda d, n: str(_tenant_path(d.environment.project.organisation, f"factory-{n}.sqlite3"))
    )


class DestinationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Destination

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Destination {n}")
    kind = DestinationKind.LOCAL
    config = factory.Dict({})
    is_default = True


class BackupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Backup

    environment = factory.SubFactory(EnvironmentFactory)
    organisation = factory.LazyAttribute(lambda b: b.environment.project.organisation)
    database = None
    name = factory.Sequence(lambda n: f"backup-{n}")
    description = "Manual backup"
    kind = BackupKind.DATABASE
    method = BackupMethod.LOGICAL
    engine = "postgresql"
    engine_version = "15.4"
    status = BackupStatus.COMPLETED
    size = 1945663
    checksum_sha256 = "0" * 64
    compression = "zstd"
    created_at = factory.LazyFunction(timezone.now)
    completed_at = factory.LazyAttribute(lambda b: b.created_at)


class BackupCopyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackupCopy

    backup = factory.SubFactory(BackupFactory)
    destination = factory.SubFactory(
        DestinationFactory, organisation=factory.SelfAttribute("..backup.organisation")
    )
    key = factory.LazyAttribute(lambda c: f"{c.backup.name}.pgdump.zst")
    status = CopyStatus.STORED
    size = factory.LazyAttribute(lambda c: c.backup.size)
    file_exists = True


class ScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Schedule

    environment = factory.SubFactory(EnvironmentFactory)
    db_cron = "0 2 * * *"
    timezone = "UTC"


class IntervalRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntervalRule

    schedule = factory.SubFactory(ScheduleFactory)
    interval = "daily"
    minute = factory.List([30])
    hour = factory.List([2])


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    organisation = factory.SubFactory(OrganisationFactory)
    kind = AlertKind.BACKUP_FAILED
    dedup_key = factory.Sequence(lambda n: f"test:{n}")
    title = "Backup failed"
    message = "pg_dump exited with status 1"


class NotificationChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NotificationChannel

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = NotificationChannel.Kind.WEBHOOK
    url = "http://127.0.0.1:9/hook"
    secret = "s3cret"


class RestoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Restore

    backup = factory.SubFactory(BackupFactory)
    organisation = factory.LazyAttribute(lambda r: r.backup.organisation)
    source_environment = factory.LazyAttribute(lambda r: r.backup.environment)
    target_environment = factory.LazyAttribute(lambda r: r.backup.environment)
    target_type = "same"
