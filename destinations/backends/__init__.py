"""Destination backends, one module per kind, loaded by kind.

Each backend declares its ``parameters`` and which are ``sensitive_parameters``
(write-only in the API, encrypted at rest), builds a django-storages Storage and answers
the artifact I/O of ``destinations.storage`` in its own terms.
"""

from destinations.backends.base import DestinationBackend
from destinations.backends.local import LocalBackend
from destinations.backends.s3 import S3Backend

BACKENDS: dict[str, type[DestinationBackend]] = {
    LocalBackend.kind: LocalBackend,
    S3Backend.kind: S3Backend,
}


def backend_for(destination) -> DestinationBackend:
    return BACKENDS[destination.kind](
        config=destination.config,
        secrets=destination.secrets,
        host_rules=destination.host_rules,
        label=destination.name,
    )


class DestinationBackends(dict):
    """The backends of one operation, one per destination (rows with the same id share
    one), each built on first use: a loop over many artifacts builds each destination's
    Storage and client once. Made per operation, so the next one reads the destination's
    configuration anew."""

    def __missing__(self, destination) -> DestinationBackend:
        backend = self[destination] = backend_for(destination)
        return backend
