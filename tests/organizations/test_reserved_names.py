"""Names Strongbox keeps for a restore's own copies beside a target cannot be a tenant's."""

import pytest

from config.errors import InvalidInput
from organizations import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("engine", "name"),
    [
        ("postgresql", "ledger_sbx_prev_0a1b2c3d"),
        ("mariadb", "shop_sbx_restore_0a1b2c3d"),
        ("sqlite", "{allowed}/.cache.sqlite3.sbx-prev-0a1b2c3d"),
    ],
)
def test_a_database_named_like_a_kept_or_scratch_copy_is_refused(
    environment, organisation_dir, engine, name
):
    name = name.format(allowed=organisation_dir)
    with pytest.raises(InvalidInput, match="ends like the copies Strongbox keeps") as raised:
        services.database_create(
            environment=environment, name="Sneaky", engine=engine, database_name=name
        )
    assert list(raised.value.fields) == ["database_name"]

    ordinary = services.database_create(
        environment=environment, name="Fine", engine="postgresql", database_name="sbx_prev_app"
    )
    with pytest.raises(InvalidInput):
        services.database_update(database=ordinary, database_name="app_sbx_verify_deadbeef")


def test_a_files_directory_named_like_a_kept_tree_is_refused(project, organisation_dir):
    tmp_path = organisation_dir
    with pytest.raises(InvalidInput) as raised:
        services.environment_create(
            project=project, name="Prod", files_path=str(tmp_path / ".site.sbx-prev-0a1b2c3d/")
        )
    assert list(raised.value.fields) == ["files_path"]
    assert services.environment_create(
        project=project, name="Prod", files_path=str(tmp_path / "site.sbx")
    )
