"""The one backup FilterSet and the dialects' spellings of it."""

from datetime import UTC, datetime, timedelta

import pytest

from api.dialects.seed000 import FILTERS as SEED000
from api.dialects.seed002 import FILTERS as SEED002
from backups.filters import BackupFilterSet, backups_filter
from backups.models import Backup, BackupKind, BackupStatus
from backups.selectors import backups_for_organisation
from config.errors import InvalidInput
from tests import factories

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def backups(organisation, environment):
    database = factories.DatabaseFactory(environment=environment, engine="mysql")

    def make(name, minutes, **kwargs):
        return factories.BackupFactory(
            environment=environment,
            name=name,
            created_at=T0 + timedelta(minutes=minutes),
            **kwargs,
        )

    return {
        "dump": make("web-dump", 0, kind=BackupKind.DATABASE, engine="mysql", database=database),
        "base": make("web-base", 1, kind=BackupKind.BASE, status=BackupStatus.FAILED),
        "files": make("api-files", 2, kind=BackupKind.FILESYSTEM, engine="files"),
        "full": make("api-full", 3, kind=BackupKind.FULL, status=BackupStatus.IN_PROGRESS),
    }


def names(queryset) -> set[str]:
    return set(queryset.values_list("name", flat=True))


def run(organisation, params, dialect=None):
    queryset = backups_for_organisation(organisation=organisation)
    if dialect is None:
        return names(backups_filter(queryset=queryset, params=params))
    return names(backups_filter(queryset=queryset, params=params, dialect=dialect))


def test_kind_database_means_dumps_and_base_backups_and_db_is_a_synonym(organisation, backups):
    assert run(organisation, {"kind": "database"}) == {"web-dump", "web-base"}
    assert run(organisation, {"kind": "db"}) == {"web-dump", "web-base"}
    assert run(organisation, {"kind": "full"}) == {"api-full"}
    assert run(organisation, {"kind": "filesystem"}) == {"api-files"}


def test_a_full_backup_holds_each_type(organisation, backups):
    assert run(organisation, {"holds": "database"}) == {"web-dump", "web-base", "api-full"}
    assert run(organisation, {"holds": "filesystem"}) == {"api-files", "api-full"}


def test_status_dates_name_database_and_engine(organisation, backups):
    assert run(organisation, {"status": "failed"}) == {"web-base"}
    assert run(organisation, {"created_after": "2026-11-01T00:01:00Z"}) == {"api-files", "api-full"}
    assert run(organisation, {"created_before": "2026-11-01T00:01:00+00:00"}) == {"web-dump"}
    assert run(organisation, {"created_before": "2026-11-01T00:01:00 00:00"}) == {"web-dump"}
    assert run(organisation, {"name": "web-*"}) == {"web-dump", "web-base"}
    assert run(organisation, {"name": "web"}) == set()
    assert run(organisation, {"name": "api-full"}) == {"api-full"}
    database_id = str(backups["dump"].database_id)
    assert run(organisation, {"database": database_id}) == {"web-dump"}
    assert run(organisation, {"engine": "files"}) == {"api-files"}
    assert len(run(organisation, {})) == 4


def test_an_offset_past_postgresqls_range_is_compared_in_utc(organisation, backups):
    # 2026-11-01T00:01:00Z written with a -19:34 offset (PostgreSQL takes up to 15:59).
    after = "2026-10-31T04:27:00-19:34"
    assert run(organisation, {"created_after": after}) == {"api-files", "api-full"}


@pytest.mark.parametrize("param", ["status", "kind", "created_after", "database", "engine"])
def test_an_empty_typed_filter_is_refused_naming_it(organisation, backups, param):
    with pytest.raises(InvalidInput) as raised:
        run(organisation, {param: ""})
    assert raised.value.fields == {param: ["May not be empty."]}


def test_an_empty_name_filter_matches_everything(organisation, backups):
    assert len(run(organisation, {"name": ""})) == 4


@pytest.mark.parametrize(
    ("params", "named", "lists"),
    [
        ({"status": "done"}, "status", "not-supported"),
        ({"kind": "tables"}, "kind", "filesystem"),
        ({"created_before": "yesterday"}, "created_before", "ISO 8601"),
        ({"created_after": "2026-02-30T00:00:00Z"}, "created_after", "ISO 8601"),
        ({"database": "db-1"}, "database", "UUID"),
        ({"engine": "oracle"}, "engine", "postgresql"),
    ],
)
def test_an_unusable_value_names_the_parameter_and_what_it_accepts(
    organisation, params, named, lists
):
    with pytest.raises(InvalidInput) as raised:
        run(organisation, params)
    assert raised.value.message.startswith(f"{named}:")
    assert lists in raised.value.message
    assert named in raised.value.fields


def test_dialects_use_their_own_parameter_names_and_status_words(organisation, backups):
    assert run(organisation, {"status": "IN_PROGRESS"}, SEED002) == {"api-full"}
    assert run(organisation, {"status": "in_progress"}, SEED002) == {"api-full"}
    assert run(organisation, {"instance_id": str(backups["dump"].database_id)}, SEED002) == {
        "web-dump"
    }
    assert run(organisation, {"createdAfter": "2026-11-01T00:02:30Z"}, SEED000) == {"api-full"}
    assert run(organisation, {"created_after": "2026-11-01T00:02:30Z"}, SEED000) == set(
        backups_for_organisation(organisation=organisation).values_list("name", flat=True)
    ), "seed 000 spells it createdAfter; the canonical name is just an unknown parameter there"


def test_a_dialects_errors_use_its_spelling(organisation):
    with pytest.raises(InvalidInput) as raised:
        run(organisation, {"status": "DONE"}, SEED002)
    assert raised.value.message.startswith("status:")
    assert "NOT_SUPPORTED" in raised.value.message
    assert "not-supported" not in raised.value.message
    with pytest.raises(InvalidInput) as raised:
        run(organisation, {"createdBefore": "soon"}, SEED000)
    assert raised.value.message.startswith("createdBefore:")


def test_the_html_list_can_use_the_filterset_directly(organisation, backups):
    filterset = BackupFilterSet(
        data={"status": "completed", "name": "web-*"}, queryset=Backup.objects.all()
    )
    assert filterset.is_valid()
    assert names(filterset.qs) == {"web-dump"}
