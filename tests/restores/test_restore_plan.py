"""Restore plans in environments with several databases, two organisations side by side:
the plan names each target, the restore does exactly the plan, through the real tools."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert, AlertKind
from organizations.models import Role
from restores.models import Restore, RestoreStatus
from restores.plan import restore_plan_for
from restores.services import restore_claim, restore_execute, restore_request
from restores.tasks import run_restore
from tests import factories
from tests.backups.helpers import database_for, make_files_tree, run_backup_now
from tests.fixtures.databases import (
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    table_checksums,
)
from tests.restores.helpers import flip_a_byte, leftovers

pytestmark = pytest.mark.django_db

IN_PLACE = "The target is the backup's own environment Dashboard / Staging: this restore replaces"


@pytest.fixture
def estate(
    organisation,
    other_organisation,
    project,
    environment,
    destination,
    make_sqlite_database,
    make_postgres_database,
    organisation_dir,
):
    """Staging: Main and Cache (SQLite), Reports (PostgreSQL) and a files directory.
    Production: Main and Analytics (SQLite), Warehouse (PostgreSQL), each holding data.
    Another organisation has an environment with a SQLite database of its own."""
    specs = {}
    makers = {
        "sqlite": (make_sqlite_database, fill_sqlite),
        "postgresql": (make_postgres_database, fill_postgres),
    }

    def add(env, name, engine, rows):
        make, fill = makers[engine]
        # A SQLite file lies in its own organisation's directory.
        spec = make(env.project.organisation) if engine == "sqlite" else make()
        fill(spec, rows=rows)
        slug = name.lower()
        specs[(env.slug, slug)] = spec
        return database_for(env, spec, name=name, slug=slug)

    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    elsewhere = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation), name="Theirs"
    )
    factories.DestinationFactory(organisation=other_organisation, name="Their disk")
    files = make_files_tree(organisation_dir / "staging-files")
    environment.files_path = str(files)
    environment.save()
    return SimpleNamespace(
        staging=environment,
        production=production,
        elsewhere=elsewhere,
        main=add(environment, "Main", "sqlite", 120),
        cache=add(environment, "Cache", "sqlite", 40),
        reports=add(environment, "Reports", "postgresql", 80),
        prod_main=add(production, "Main", "sqlite", 30),
        analytics=add(production, "Analytics", "sqlite", 50),
        warehouse=add(production, "Warehouse", "postgresql", 20),
        theirs=add(elsewhere, "Theirs", "sqlite", 10),
        specs=specs,
        spec=lambda database: specs[(database.environment.slug, database.slug)],
    )


def _backup(estate, database):
    return run_backup_now(environment=estate.staging, kind="database", database=database)


def _post(client, backup, what, body):
    return client.post(f"/api/backups/{backup.id}/{what}", body, format="json")


def _checksums(estate):
    return {key: table_checksums(spec) for key, spec in estate.specs.items()}


def test_a_plan_maps_a_database_backup_onto_its_own_database_and_warns_it_is_in_place(
    client_for, organisation, estate
):
    backup = _backup(estate, estate.main)

    response = _post(client_for(organisation, Role.OPERATOR), backup, "restore-plan", {})

    assert response.status_code == 200, response.content
    plan = response.json()
    assert plan["members"] == [
        {
            "label": "Main",
            "source": {
                "databaseId": str(estate.main.id),
                "name": "Main",
                "engine": "sqlite",
                "version": backup.engine_version,
            },
            "target": {
                "environmentId": str(estate.staging.id),
                "databaseId": str(estate.main.id),
                "name": "Main",
                "engine": "sqlite",
                "version": plan["members"][0]["target"]["version"],
            },
        }
    ]
    assert plan["members"][0]["target"]["version"]  # asked from the server when not recorded
    assert len(plan["warnings"]) == 1 and plan["warnings"][0].startswith(IN_PLACE)
    assert not Restore.objects.exists()  # a plan has no side effects


def test_into_another_environment_the_plan_picks_the_database_of_the_same_slug(
    client_for, organisation, estate
):
    backup = _backup(estate, estate.main)
    body = {"targetType": "other", "targetEnvironmentId": str(estate.production.id)}

    plan = _post(client_for(organisation, Role.OPERATOR), backup, "restore-plan", body).json()

    assert [m["target"]["databaseId"] for m in plan["members"]] == [str(estate.prod_main.id)]
    assert plan["warnings"] == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_target_database_id_restores_into_a_database_of_another_name_and_nothing_else_changes(
    engine, client_for, organisation, estate, make_mariadb_database, make_postgres_database
):
    if engine == "sqlite":
        source, target = estate.main, estate.analytics
    elif engine == "postgresql":
        # Production now has two PostgreSQL databases, none named reports: ambiguous.
        source = estate.reports
        spec = make_postgres_database()
        fill_postgres(spec, rows=7)
        estate.specs[("prod", "archive")] = spec
        target = database_for(estate.production, spec, name="Archive", slug="archive")
    else:
        spec = make_mariadb_database()
        fill_mariadb(spec, rows=90)
        estate.specs[("staging", "shop")] = spec
        source = database_for(estate.staging, spec, name="Shop", slug="shop")
        spec = make_mariadb_database()
        fill_mariadb(spec, rows=9)
        estate.specs[("prod", "orders")] = spec
        target = database_for(estate.production, spec, name="Orders", slug="orders")
    backup = _backup(estate, source)
    operator = client_for(organisation, Role.OPERATOR)
    body = {"targetType": "other", "targetEnvironmentId": str(estate.production.id)}
    if engine == "postgresql":
        ambiguous = _post(operator, backup, "restore-plan", body)
        assert ambiguous.status_code == 422
        assert "cannot tell which one" in ambiguous.json()["error"]["message"]
    body["targetDatabaseId"] = str(target.id)
    before = _checksums(estate)

    plan = _post(operator, backup, "restore-plan", body).json()
    accepted = _post(operator, backup, "restore", body)

    assert plan["members"][0]["target"]["databaseId"] == str(target.id)
    assert plan["members"][0]["target"]["name"] == target.name
    assert (
        f"{source.name} goes into {target.name}, a database with another name."
        in (plan["warnings"])
    )
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["members"] == plan["members"]
    assert accepted.json()["warnings"] == plan["warnings"]
    restore_id = accepted.json()["id"]
    assert run_restore(restore_id) == RestoreStatus.COMPLETED, Restore.objects.get().message
    detail = operator.get(f"/api/restores/{restore_id}").json()
    assert detail["members"] == plan["members"]
    assert detail["targetDatabaseId"] == str(target.id)
    assert f"replacing the database {target.name}" in detail["message"]
    after = _checksums(estate)
    target_key = (target.environment.slug, target.slug)
    assert after[target_key] == table_checksums(estate.spec(source))
    assert after[target_key] != before[target_key]
    assert {k: v for k, v in after.items() if k != target_key} == {
        k: v for k, v in before.items() if k != target_key
    }
    assert leftovers(estate.spec(target)) == []


def test_the_seed_003_body_falls_back_to_the_only_database_of_the_engine_and_the_plan_says_so(
    client_for, organisation, estate
):
    backup = _backup(estate, estate.reports)
    operator = client_for(organisation, Role.OPERATOR)
    body = {
        "backupId": str(backup.id),
        "targetType": "other",
        "targetEnvironmentId": str(estate.production.id),
    }

    plan = _post(operator, backup, "restore-plan", body).json()
    accepted = _post(operator, backup, "restore", body)

    assert [m["target"]["name"] for m in plan["members"]] == ["Warehouse"]
    fallback = (
        "Dashboard / Production has no database with the slug 'reports' of Reports, so "
        "Warehouse, the only PostgreSQL database of Dashboard / Production, would be replaced."
    )
    assert any(w.startswith(fallback) for w in plan["warnings"]), plan["warnings"]
    assert accepted.status_code == 202
    assert accepted.json()["members"] == plan["members"]
    assert run_restore(accepted.json()["id"]) == RestoreStatus.COMPLETED
    assert table_checksums(estate.spec(estate.warehouse)) == table_checksums(
        estate.spec(estate.reports)
    )


def test_a_full_backup_is_planned_by_slug_and_refuses_a_target_database(
    client_for, organisation, estate
):
    backup = run_backup_now(environment=estate.staging, kind="full")
    operator = client_for(organisation, Role.OPERATOR)

    plan = _post(operator, backup, "restore-plan", {"targetType": "same"}).json()
    chosen = _post(operator, backup, "restore-plan", {"targetDatabaseId": str(estate.main.id)})
    elsewhere = _post(
        operator,
        backup,
        "restore-plan",
        {"targetType": "other", "targetEnvironmentId": str(estate.production.id)},
    )

    by_label = {m["label"]: m for m in plan["members"]}
    assert sorted(by_label) == ["Cache", "Main", "Reports", "files"]
    for database in (estate.main, estate.cache, estate.reports):
        member = by_label[database.name]
        assert member["source"]["databaseId"] == member["target"]["databaseId"] == str(database.id)
    files = by_label["files"]
    assert files["source"]["databaseId"] is None and files["target"]["databaseId"] is None
    assert files["target"]["name"] == estate.staging.files_path
    assert plan["warnings"][0].startswith(IN_PLACE)
    assert chosen.status_code == 422
    assert "targetDatabaseId" in chosen.json()["error"]["fields"]
    assert elsewhere.status_code == 422  # production has no cache nor reports: no fallback
    assert "named 'cache'" in elsewhere.json()["error"]["message"]
    accepted = _post(operator, backup, "restore", {"targetType": "same"})
    assert accepted.json()["members"] == plan["members"]


def test_a_files_backup_is_planned_onto_the_target_directory(client_for, organisation, estate):
    backup = run_backup_now(environment=estate.staging, kind="filesystem")

    plan = _post(client_for(organisation, Role.OPERATOR), backup, "restore-plan", {}).json()

    assert plan["members"] == [
        {
            "label": "files",
            "source": {"databaseId": None, "name": "files", "engine": "files", "version": ""},
            "target": {
                "environmentId": str(estate.staging.id),
                "databaseId": None,
                "name": estate.staging.files_path,
                "engine": "files",
                "version": "",
            },
        }
    ]


def test_a_point_in_time_restore_maps_its_database_as_an_ordinary_one(estate):
    """PITR needs archived WAL to run; its mapping is the same function's, checked here."""
    backup = factories.BackupFactory(
        environment=estate.staging, database=estate.reports, engine="postgresql", kind="base"
    )

    fallback = restore_plan_for(backup, estate.production, pitr=True)
    chosen = restore_plan_for(
        backup, estate.staging, pitr=True, target_database=estate.reports
    ).records()

    assert [m.database for m in fallback.members] == [estate.warehouse]
    assert any("the only PostgreSQL database of" in w for w in fallback.warnings)
    assert [r["target"]["database_id"] for r in chosen] == [str(estate.reports.id)]


def test_a_restore_replaces_the_database_its_plan_named_even_if_a_better_match_appears_later(
    estate,
):
    backup = _backup(estate, estate.reports)
    restore = restore_request(
        backup=backup, target_type="other", target_environment=estate.production, enqueue=False
    )
    assert restore.members[0]["target"]["name"] == "Warehouse"
    # Someone adds the database of the same slug: a fresh plan would now pick it instead.
    factories.DatabaseFactory(
        environment=estate.production, name="Reports", slug="reports", engine="postgresql"
    )

    restore = restore_execute(restore=restore_claim(restore_id=restore.id))

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(estate.spec(estate.warehouse)) == table_checksums(
        estate.spec(estate.reports)
    )


def test_a_restore_whose_planned_database_is_gone_is_refused_and_changes_nothing(estate):
    backup = _backup(estate, estate.reports)
    restore = restore_request(
        backup=backup, target_type="other", target_environment=estate.production, enqueue=False
    )
    before = _checksums(estate)
    # The planned target is unregistered and another database takes the slug.
    warehouse_spec = estate.spec(estate.warehouse)
    estate.warehouse.delete()
    database_for(estate.production, warehouse_spec, name="Reports", slug="reports")

    restore = restore_execute(restore=restore_claim(restore_id=restore.id))

    assert restore.status == RestoreStatus.FAILED
    assert "changed since this restore was requested" in restore.message
    assert "it was to replace the database Warehouse (PostgreSQL) with Reports's data" in (
        restore.message
    )
    assert "it would now replace the database Reports (PostgreSQL)" in restore.message
    assert _checksums(estate) == before


def test_a_failed_restore_names_the_database_it_was_to_replace_in_its_log_alert_and_page(
    client, operator, estate
):
    backup = _backup(estate, estate.main)
    flip_a_byte(backup)
    restore = restore_request(
        backup=backup,
        target_type="other",
        target_environment=estate.production,
        target_database=estate.analytics,
        enqueue=False,
    )

    restore = restore_execute(restore=restore_claim(restore_id=restore.id))

    assert restore.status == RestoreStatus.FAILED
    assert "It was to replace the database Analytics (SQLite) with Main's data." in (
        restore.message
    )
    alert = Alert.objects.get(kind=AlertKind.RESTORE_FAILED)
    assert alert.title == f"Restore of {backup.name} into Dashboard / Production (Analytics) failed"
    assert "the database Analytics" in alert.message
    client.force_login(operator)
    page = client.get(f"/restores/{restore.id}/").content.decode()
    assert "the database <strong>Analytics</strong>" in page
    assert "Main goes into Analytics, a database with another name." in page


def test_the_other_organisation_can_neither_plan_nor_target_across_the_boundary(
    client_for, organisation, other_organisation, estate
):
    ours = _backup(estate, estate.main)
    theirs = run_backup_now(environment=estate.elsewhere, kind="database", database=estate.theirs)
    outsider = client_for(other_organisation, Role.OPERATOR)

    assert _post(outsider, ours, "restore-plan", {}).status_code == 404
    foreign_target = _post(
        client_for(organisation, Role.OPERATOR),
        ours,
        "restore-plan",
        {"targetDatabaseId": str(estate.theirs.id)},
    )
    own_plan = _post(outsider, theirs, "restore-plan", {}).json()

    assert foreign_target.status_code == 400
    assert "targetDatabaseId" in foreign_target.json()["error"]["fields"]
    assert [m["target"]["databaseId"] for m in own_plan["members"]] == [str(estate.theirs.id)]


def test_the_restore_command_takes_a_target_database_and_says_what_it_replaces(estate):
    from io import StringIO

    from django.core.management import call_command

    backup = _backup(estate, estate.main)
    out = StringIO()

    call_command(
        "restore_backup",
        str(backup.id),
        "--target-environment",
        str(estate.production.id),
        "--target-database",
        str(estate.analytics.id),
        stdout=out,
    )

    assert "Replacing the database Analytics (SQLite) with Main's data." in out.getvalue()
    assert "warning: Main goes into Analytics, a database with another name." in out.getvalue()
    assert table_checksums(estate.spec(estate.analytics)) == table_checksums(
        estate.spec(estate.main)
    )


def test_a_backup_whose_database_was_unregistered_is_planned_by_engine_and_says_so(project):
    staging = factories.EnvironmentFactory(project=project, name="Staging")
    production = factories.EnvironmentFactory(project=project, name="Production")
    analytics = factories.DatabaseFactory(environment=production, name="Analytics")
    backup = factories.BackupFactory(
        environment=staging, database=None, engine="sqlite", engine_version="3.46.1"
    )

    plan = restore_plan_for(backup, production)

    assert [m.database for m in plan.members] == [analytics]
    assert plan.records()[0]["source"] == {
        "database_id": None,
        "name": "",
        "engine": "sqlite",
        "version": "3.46.1",
    }
    assert plan.warnings == [
        "The backed-up database is no longer registered, so Analytics, the only SQLite "
        "database of Dashboard / Production, would be replaced. Choose the database "
        "explicitly (targetDatabaseId) to confirm it."
    ]


def test_planning_a_full_backup_costs_the_same_queries_whatever_its_number_of_databases(
    client_for, organisation, project
):
    # Backup.engine_version holds 50 characters: short slugs keep several versions in it.
    client = client_for(organisation, Role.OPERATOR)
    counts = {}
    for size in (1, 5):
        environment = factories.EnvironmentFactory(project=project)
        for slug in "abcde"[:size]:
            factories.DatabaseFactory(environment=environment, slug=slug, version="3.40.1")
        backup = factories.BackupFactory(
            environment=environment,
            kind="full",
            engine="",
            engine_version=", ".join(f"{slug}:3.40" for slug in "abcde"[:size]),
        )
        url = f"/api/backups/{backup.id}/restore-plan"
        client.post(url, {}, format="json")  # the token's first use writes to it
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url, {}, format="json")
        assert len(response.json()["members"]) == size
        counts[size] = len(queries.captured_queries)

    assert counts[5] == counts[1]
