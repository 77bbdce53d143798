import sqlite3
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config.errors import ApplicationError
from destinations.models import Destination, DestinationKind
from organizations.models import (
    Database,
    Engine,
    Environment,
    Membership,
    Organisation,
    Project,
    Role,
)
from organizations.services import database_create, environment_create, project_create
from organizations.validators import organisation_root

DEMO_PASSWORD = "strongbox-demo"  # noqa: S105 - printed for the demo on purpose


class Command(BaseCommand):
    help = "Create (idempotently) a demo organisation with a real SQLite database and files."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args, username, password, **options):
        try:
            self._seed(username=username, password=password)
        except ApplicationError as exc:  # e.g. a tenant root inside the app's own data
            raise CommandError(exc.message) from exc

    @transaction.atomic
    def _seed(self, *, username: str, password: str) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save()
        org, _ = Organisation.objects.get_or_create(slug="demo", defaults={"name": "Demo Org"})
        # The demo's database and files live in its own directory under the tenant root.
        demo_dir = organisation_root(org)
        files_dir = demo_dir / "files"
        files_dir.mkdir(parents=True, exist_ok=True)
        db_path = demo_dir / "shop.sqlite3"
        _fill_demo_database(db_path)
        _fill_demo_files(files_dir)
        Membership.objects.get_or_create(user=user, organisation=org, defaults={"role": Role.ADMIN})
        # Created through the services (so the tenant path rules apply), found by slug
        # when they already exist so the command stays idempotent.
        project = Project.objects.filter(organisation=org, slug="shop").first()
        if project is None:
            project = project_create(organisation=org, name="Shop", slug="shop")
        env = Environment.objects.filter(project=project, slug="production").first()
        if env is None:
            env = environment_create(
                project=project, name="Production", slug="production", files_path=str(files_dir)
            )
        if not Database.objects.filter(environment=env, slug="shop-db").exists():
            database_create(
                environment=env,
                name="Shop database",
                slug="shop-db",
                engine=Engine.SQLITE,
                version=sqlite3.sqlite_version,
                database_name=str(db_path),
            )
        Destination.objects.get_or_create(
            organisation=org,
            name="Local disk",
            defaults={"kind": DestinationKind.LOCAL, "config": {}, "is_default": True},
        )
        self.stdout.write(
            f"Demo organisation ready. Sign in as {username} / "
            f"{password if created else '(existing password)'}"
        )


def _fill_demo_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER, "
            "total_cents INTEGER, placed_at TEXT)"
        )
        if conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
            conn.executemany(
                "INSERT INTO customers (name, email) VALUES (?, ?)",
                [(f"Customer {i}", f"customer{i}@example.com") for i in range(1, 501)],
            )
            conn.executemany(
                "INSERT INTO orders (customer_id, total_cents, placed_at) VALUES (?, ?, ?)",
                [
                    (1 + i % 500, 100 + (i * 37) % 9000, f"2026-11-{1 + i % 22:02d}")
                    for i in range(5000)
                ],
            )
    conn.close()


def _fill_demo_files(files_dir: Path) -> None:
    (files_dir / "uploads").mkdir(exist_ok=True)
    for i in range(5):
        target = files_dir / "uploads" / f"invoice-{i}.txt"
        if not target.exists():
            target.write_text(f"Invoice {i}\n" * 200)
