import contextlib
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from destinations.backends.base import DestinationBackend, Parameter
from destinations.storage import ArtifactMissing, LocalSink


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

    def artifact_path(self, key: str) -> Path:
        return Path(self.store.path(key))

    def open_sink(self, key: str, *, name: str, replace: bool = False) -> LocalSink:
        return LocalSink(name, self.artifact_path(key), key, replace=replace)

    def open_reader(self, key: str) -> BinaryIO:
        try:
            return open(self.artifact_path(key), "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError as exc:
            raise ArtifactMissing(f"{key} is missing from {self.label}") from exc

    def discard_partial(self, key: str) -> int:
        """The ``.<name>.partial-*`` temporary files of interrupted writes."""
        final = self.artifact_path(key)
        removed = 0
        if final.parent.is_dir():
            for leftover in final.parent.glob(f".{final.name}.partial-*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                    removed += 1
        return removed
