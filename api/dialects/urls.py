"""The backup list dialects, each at exactly the path its document gives.

Both spellings are served: the documented one (in the schema) and the same with a
trailing slash (left out of the schema so each operation appears once).
"""

from api.base.routes import routes
from api.dialects import seed000, seed001, seed002, seed004

urlpatterns = [
    *routes(
        "api/v3/organizations/<str:organisation>/applications/<str:application>"
        "/environments/<str:environment>/backups/<str:type>",
        seed000.Seed000BackupListView.as_view,
        "seed000-environment-backups",
    ),
    *routes(
        "v1/backup-destinations/<str:backupDestinationId>/backups",
        seed001.Seed001DestinationBackupsView.as_view,
        "seed001-destination-backups",
    ),
    *routes(
        "v1/database-backups",
        seed002.Seed002DatabaseBackupListView.as_view,
        "seed002-database-backups",
    ),
    *routes(
        "database/<str:databaseId>/backup",
        seed004.Seed004DatabaseBackupsView.as_view,
        "seed004-database-backups",
    ),
]
