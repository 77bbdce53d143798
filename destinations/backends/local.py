from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from destinations.backends.base import DestinationBackend, Parameter


class LocalBackend(DestinationBackend):
    kind = "local"
    parameters = (
        Parameter("path", help="Directory on the worker; defaults to the built-in artifact root."),
    )

    @property
    def root(self) -> Path:
        return Path(self.config.get("path") or settings.STRONGBOX_LOCAL_DESTINATION_ROOT)

    def storage(self) -> FileSystemStorage:
        return FileSystemStorage(location=str(self.root))

    def describe(self) -> str:
        return str(self.root)
