from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from django.core.files.storage import Storage

from destinations.storage import ArtifactMissing, Sink, StorageSink
from organizations.hostpolicy import HostRules


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool = False
    help: str = ""
    # What the backend's ``validate`` takes, when more than any text (the API schema says it).
    syntax: str = ""
    # (min, max) when a JSON integer in that range is taken too (stored as its text).
    integer_range: tuple[int, int] | None = None


class DestinationBackend:
    """One destination's configuration, and the artifact I/O it answers in its own terms.

    A backend is built per operation (``backend_for``, or ``DestinationBackends`` for a loop
    over many artifacts): its Storage, an S3 client with its credentials, is built on first
    use and shared by that operation's calls, never kept beyond it.
    """

    kind: str = ""
    parameters: tuple[Parameter, ...] = ()
    sensitive_parameters: tuple[str, ...] = ()
    # Whether an upload that failed mid-way (the store went away) can leave parts behind
    # that only a later clean-up removes (S3 multipart uploads).
    leaves_unfinished_uploads: bool = False

    def __init__(
        self,
        *,
        config: Mapping,
        secrets: Mapping,
        host_rules: Callable[[], HostRules] | None = None,
        label: str = "",
    ):
        self.config = dict(config)
        self.secrets = dict(secrets)
        # The organisation's host policy, read only by backends that connect to a host.
        self.host_rules = host_rules
        self.label = label  # the destination's name, for messages

    @classmethod
    def validate(cls, config: Mapping, secrets: Mapping) -> dict[str, str]:
        """Return {parameter: problem} for missing or unknown parameters."""
        known = {p.name for p in cls.parameters}
        problems = {}
        for p in cls.parameters:
            source = secrets if p.name in cls.sensitive_parameters else config
            if p.required and not source.get(p.name):
                problems[p.name] = f"{p.name} is required for a {cls.kind} destination."
        for name in {*config, *secrets} - known:
            problems[name] = f"Unknown parameter for a {cls.kind} destination."
        return problems

    def storage(self) -> Storage:
        """A new Storage for this destination."""
        raise NotImplementedError

    @cached_property
    def store(self) -> Storage:
        """The Storage this backend's artifact calls share, built on first use."""
        return self.storage()

    def describe(self) -> str:
        raise NotImplementedError

    # --- artifact I/O (``destinations.storage``); a kind overrides what it does its own way

    def artifact_path(self, key: str) -> Path | None:
        """The artifact's file on this machine, when the store keeps it as one (it can be
        read again without a download); None for a remote store."""
        return None

    def open_sink(
        self,
        key: str,
        *,
        name: str,
        locked_until: datetime | None = None,
        replace: bool = False,
    ) -> Sink:
        return StorageSink(name, self.store, key, replace=replace)

    def seal(self, key: str, *, locked_until: datetime | None = None) -> None:
        """Protect a complete, verified artifact as the kind can (local: read-only; S3:
        its lock, set again)."""

    # --- immutability: S3 Object Lock (``S3Backend``); other kinds lock nothing

    def lock_until(self, *, planned: datetime | None, now: datetime) -> datetime | None:
        """The date an artifact uploaded ``now`` is locked until; None: not locked."""
        return None

    def extend_lock(self, key: str, until: datetime) -> None:
        raise NotImplementedError(f"a {self.kind} destination locks nothing")

    def object_lock_problem(self, storage: Storage | None = None) -> str | None:
        """Why the store cannot lock what the configuration asks to lock, or None."""
        return None

    def open_reader(self, key: str) -> BinaryIO:
        if not self.store.exists(key):
            raise ArtifactMissing(f"{key} is missing from {self.label}")
        return self.store.open(key, "rb")

    def size(self, key: str) -> int | None:
        if not self.store.exists(key):
            return None
        return self.store.size(key)

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """{key: stored size} of every artifact directly under the folder ``prefix`` (keys
        as given to the other calls), in as few calls as the store allows: what a listing
        check (``pitr.verify``) asks instead of one ``size`` per artifact."""
        prefix = prefix.strip("/")
        try:
            _, files = self.store.listdir(prefix)
        except FileNotFoundError:
            return {}
        return {f"{prefix}/{name}": self.store.size(f"{prefix}/{name}") for name in files}

    def discard_partial(self, key: str) -> int:
        """Remove what an interrupted upload of ``key`` left; returns how many were removed."""
        return 0

    # --- the connection test (``destinations.services.destination_test``)

    def probe_storage(self) -> Storage:
        """A Storage for a test a person waits on: one that fails fast where it can."""
        return self.storage()

    def probe_wait_seconds(self) -> float:
        """About the longest a call of the probe Storage waits for no answer."""
        return 0.0

    def explain(self, exc: BaseException) -> BaseException:
        """``exc`` in this kind's own terms (S3: DestinationNotAnswering for no answer)."""
        return exc

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the store did not answer at all (rather than refused)."""
        return False
