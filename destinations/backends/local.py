import contextlib
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from destinations.backends.base import DestinationBackend, Parameter
from destinations.storage import ArtifactMissing, LocalSink

READ_ONLY_VALUES = {"true": True, "false": False}


class LocalBackend(DestinationBackend):
    kind = "local"
    parameters = (
        Parameter("path", help="Directory on the worker; defaults to the built-in artifact root."),
        Parameter(
            "read_only",
            help="true: each artifact is made read-only (0444) once complete and verified. It "
            "guards against overwriting, not deletion: the worker's user, root and whoever "
            "can write the directory can still delete it.",
            syntax="true or false",
        ),
    )

    @classmethod
    def validate(cls, config: Mapping, secrets: Mapping) -> dict[str, str]:
        problems = super().validate(config, secrets)
        value = config.get("read_only")
        if value not in (None, "") and str(value).lower() not in READ_ONLY_VALUES:
            problems["read_only"] = f"read_only must be true or false, not {str(value)[:40]!r}."
        return problems

    @property
    def read_only(self) -> bool:
        return READ_ONLY_VALUES.get(str(self.config.get("read_only") or "").lower(), False)

    @property
    def root(self) -> Path:
        return Path(self.config.get("path") or settings.STRONGBOX_LOCAL_DESTINATION_ROOT)

    def storage(self) -> FileSystemStorage:
        return FileSystemStorage(location=str(self.root))

    def describe(self) -> str:
        return str(self.root)

    def artifact_path(self, key: str) -> Path:
        return Path(self.store.path(key))

    def open_sink(
        self,
        key: str,
        *,
        name: str,
        locked_until: datetime | None = None,
        replace: bool = False,
    ) -> LocalSink:
        return LocalSink(name, self.artifact_path(key), key, replace=replace)

    def seal(self, key: str, *, locked_until: datetime | None = None) -> None:
        """With ``read_only``: no write bit for anyone. Deleting needs write access to the
        directory, not the file, so retention (and anyone with the worker's rights) still can."""
        if self.read_only:
            self.artifact_path(key).chmod(0o444)

    def open_reader(self, key: str) -> BinaryIO:
        try:
            return open(self.artifact_path(key), "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError as exc:
            raise ArtifactMissing(f"{key} is missing from {self.label}") from exc

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """One directory scan (the partial files of unfinished writes left out)."""
        prefix = prefix.strip("/")
        found = {}
        try:
            with os.scandir(self.artifact_path(prefix)) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                        found[f"{prefix}/{entry.name}"] = entry.stat(follow_symlinks=False).st_size
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return found

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
