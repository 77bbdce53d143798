"""Destination backends, one module per kind, loaded by kind.

Each backend declares its ``parameters`` and which are ``sensitive_parameters``
(write-only in the API, encrypted at rest) and builds a django-storages Storage.
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
        config=destination.config, secrets=destination.secrets, host_rules=destination.host_rules
    )
