from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from storages.backends.s3 import S3Storage

from destinations.backends.base import DestinationBackend, Parameter
from destinations.storage import ArtifactMissing, DestinationNotAnswering, Sink, StorageSink
from organizations.hostpolicy import check_url

# Multipart parts of 16 MiB, two in flight and two in memory, bound what an upload of a
# non-seekable stream may hold (~50 MiB), whatever the artifact's size.
MULTIPART_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CONCURRENT_PARTS = 2
# S3's own bounds on a multipart part (5 MiB to 5 GiB).
PART_SIZE_MB_RANGE = range(5, 5120 + 1)
# Bucket names as S3 has ever allowed them (legacy us-east-1 names included: capitals and
# underscores, up to 255 characters); anything else, such as a slash, is no bucket name.
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
# botocore's own rule (it builds the endpoint's host name from the region).
_REGION_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
# Object Lock: the modes S3 knows, and the minimum lock when the plan gives no date (a
# backup kept by a count-only rule) or an earlier one. Up to a century, like S3's own bound.
OBJECT_LOCK_MODES = ("governance", "compliance")
DEFAULT_OBJECT_LOCK_MIN_DAYS = 1
OBJECT_LOCK_MIN_DAYS_RANGE = range(1, 36500 + 1)

# botocore's errors for a call that got no answer in S3's terms.
_NO_ANSWER = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


@dataclass(frozen=True)
class S3Timeouts:
    """How long one S3 call may wait, and how often it is tried.

    botocore's defaults (60 s to connect, 60 s per read, legacy retries) let an endpoint
    that accepts TCP and never answers hold a connection test for a minute and a backup for
    three. ``connect`` and ``read`` bound each attempt (``read``: each wait for bytes, not a
    whole transfer, so a large part still streams); ``attempts`` counts the first try too
    (botocore's standard retry mode, with its jittered backoff between tries).
    """

    connect: float
    read: float
    attempts: int

    @classmethod
    def configured(cls) -> S3Timeouts:
        """For backups, restores and clean-up: STRONGBOX_S3_* settings."""
        return cls(
            connect=settings.STRONGBOX_S3_CONNECT_TIMEOUT,
            read=settings.STRONGBOX_S3_READ_TIMEOUT,
            attempts=max(1, settings.STRONGBOX_S3_MAX_ATTEMPTS),
        )

    @classmethod
    def for_connection_test(cls) -> S3Timeouts:
        """A person waits on the test: one attempt, so that no answer costs one timeout."""
        return replace(cls.configured(), attempts=1)

    def client_config(self) -> Config:
        return Config(
            connect_timeout=self.connect,
            read_timeout=self.read,
            retries={"total_max_attempts": self.attempts, "mode": "standard"},
        )

    def longest_unanswered_call(self) -> float:
        """About the longest one attempt waits without an answer: a connect, then a read."""
        return self.connect + self.read


class S3Backend(DestinationBackend):
    kind = "s3"
    parameters = (
        Parameter("bucket", required=True),
        Parameter("prefix", help="Key prefix inside the bucket."),
        Parameter("region"),
        Parameter(
            "endpoint_url",
            help="For S3-compatible stores (MinIO, R2, Ceph…).",
            syntax="an http:// or https:// URL",
        ),
        Parameter(
            "part_size_mb",
            help="Multipart part size in MiB, an integer from 5 to 5120 (default 16). S3 "
            "allows 10,000 parts: 16 MiB parts cap an artifact at 160 GiB; raise it for "
            "larger databases.",
            syntax="an integer from 5 to 5120",
            integer_range=(PART_SIZE_MB_RANGE.start, PART_SIZE_MB_RANGE.stop - 1),
        ),
        Parameter(
            "object_lock_mode",
            help="S3 Object Lock for every artifact: governance (a user with "
            "s3:BypassGovernanceRetention may still delete early) or compliance (no one can, "
            "root included, until the date). Empty: no lock. The bucket must have object lock "
            "enabled.",
            syntax="governance, compliance or empty",
        ),
        Parameter(
            "object_lock_min_days",
            help="With object lock: each artifact stays locked at least this many days from "
            "its upload, longer when the retention plan keeps it longer (default 1).",
            syntax="an integer from 1 to 36500",
        ),
        Parameter("access_key_id", required=True),
        Parameter("secret_access_key", required=True),
    )
    sensitive_parameters = ("access_key_id", "secret_access_key")
    # A multipart upload the store never heard the end of stays (and is billed) until aborted.
    leaves_unfinished_uploads = True
    # Those of the Storage built last (the store, or the connection test's), for messages.
    timeouts: S3Timeouts | None = None

    @classmethod
    def validate(cls, config: Mapping, secrets: Mapping) -> dict[str, str]:
        """Also the values' syntax, so a destination that saves can be built: the part size,
        the endpoint's scheme and host, the bucket's and region's names. Whether the
        endpoint's host may be reached is the host policy's (``destinations.services``)."""
        problems = super().validate(config, secrets)
        checks = {
            "part_size_mb": _part_size_problem,
            "endpoint_url": _endpoint_problem,
            "bucket": _bucket_problem,
            "region": _region_problem,
            "object_lock_mode": _lock_mode_problem,
            "object_lock_min_days": _lock_min_days_problem,
        }
        for name, check in checks.items():
            value = config.get(name)
            if value not in (None, "") and name not in problems:
                if problem := check(value):
                    problems[name] = problem
        if config.get("object_lock_min_days") and not config.get("object_lock_mode"):
            problems.setdefault(
                "object_lock_min_days",
                "object_lock_min_days needs object_lock_mode (governance or compliance).",
            )
        return problems

    def storage(self, timeouts: S3Timeouts | None = None) -> S3Storage:
        """The bucket's Storage, its calls bounded by ``timeouts`` (the configured ones by
        default); HostNotAllowed (an OSError) when the organisation's host
        policy refuses the endpoint's host as it resolves now. botocore resolves the name
        again when it connects, moments later: the endpoint is checked before each Storage
        is built (once per operation), not pinned (S3's TLS and virtual-host addressing need
        the name)."""
        endpoint = self.config.get("endpoint_url")
        if endpoint and self.host_rules is not None:
            check_url(self.host_rules(), endpoint)

        part_size = int(self.config.get("part_size_mb") or 0) * 1024 * 1024 or MULTIPART_CHUNK_SIZE
        transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=MAX_CONCURRENT_PARTS,
            use_threads=True,
        )
        # A streamed (non-seekable) upload holds up to this many parts in memory; s3transfer's
        # default of 10 would let a slow store hold 160 MiB.
        transfer.max_in_memory_upload_chunks = MAX_CONCURRENT_PARTS
        self.timeouts = timeouts or S3Timeouts.configured()
        return S3Storage(
            bucket_name=self.config["bucket"],
            location=self.config.get("prefix", "").strip("/"),
            region_name=self.config.get("region") or None,
            endpoint_url=self.config.get("endpoint_url") or None,
            access_key=self.secrets.get("access_key_id"),
            secret_key=self.secrets.get("secret_access_key"),
            file_overwrite=False,
            default_acl=None,
            querystring_auth=False,
            transfer_config=transfer,
            client_config=self.timeouts.client_config(),
        )

    def describe(self) -> str:
        prefix = self.config.get("prefix", "").strip("/")
        return f"s3://{self.config.get('bucket', '')}/{prefix}".rstrip("/")

    # --- S3 Object Lock

    @property
    def lock_mode(self) -> str:
        """``GOVERNANCE``, ``COMPLIANCE`` (S3's spelling), or "" without object lock."""
        return str(self.config.get("object_lock_mode") or "").upper()

    def lock_until(self, *, planned: datetime | None, now: datetime) -> datetime | None:
        """The retain-until date of an artifact uploaded ``now`` whose retention plan
        says it expires ``planned`` (None: no date): the plan's date, at least the
        minimum. None without object lock."""
        if not self.lock_mode:
            return None
        days = int(self.config.get("object_lock_min_days") or DEFAULT_OBJECT_LOCK_MIN_DAYS)
        minimum = now + timedelta(days=days)
        return max(planned, minimum) if planned is not None else minimum

    def open_sink(
        self,
        key: str,
        *,
        name: str,
        locked_until: datetime | None = None,
        replace: bool = False,
    ) -> Sink:
        if locked_until is None:
            return StorageSink(name, self.store, key, explain=self.explain, replace=replace)
        # Its own Storage: the lock is an upload parameter (of CreateMultipartUpload or
        # PutObject), so it must not leak into the operation's other calls.
        storage = self.storage()
        storage.object_parameters = {
            **storage.object_parameters,
            "ObjectLockMode": self.lock_mode,
            "ObjectLockRetainUntilDate": locked_until,
        }
        return StorageSink(name, storage, key, explain=self.explain, replace=replace)

    def seal(self, key: str, *, locked_until: datetime | None = None) -> None:
        """The lock once more, on the finished object: S3 sets it when a multipart upload
        is created, but stores that ignore it there (moto's server does) lock nothing."""
        if locked_until is not None:
            self.extend_lock(key, locked_until)

    def extend_lock(self, key: str, until: datetime) -> None:
        """Move the artifact's retain-until date to ``until`` (S3 refuses a shorter one in
        compliance mode; callers only ever extend)."""
        storage = self.store
        storage.connection.meta.client.put_object_retention(
            Bucket=storage.bucket_name,
            Key=storage._normalize_name(key),
            Retention={"Mode": self.lock_mode, "RetainUntilDate": until},
        )

    def object_lock_problem(self, storage: S3Storage | None = None) -> str | None:
        """Why this bucket cannot take locked objects (GetObjectLockConfiguration), or None.
        Other failures to answer (unreachable, refused by the host policy) are raised."""
        if not self.lock_mode:
            return None
        storage = storage or self.store
        bucket = storage.bucket_name
        try:
            answer = storage.connection.meta.client.get_object_lock_configuration(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ObjectLockConfigurationNotFoundError":
                return (
                    f"object_lock_mode needs a bucket with object lock enabled; {bucket} has "
                    "none (S3 enables it on a bucket's creation, with "
                    "ObjectLockEnabledForBucket, or by AWS support)."
                )
            return f"could not read the object lock configuration of {bucket}: {code or exc}"
        enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            return f"object_lock_mode needs a bucket with object lock enabled; {bucket} has none."
        return None

    def delete(self, key: str) -> None:
        """Without object lock: one DeleteObject. With it the bucket is versioned, where
        DeleteObject only hides the object behind a delete marker and keeps every byte:
        every version of the key is deleted, which S3 refuses before its lock date."""
        if not self.lock_mode:
            with self._answered():
                super().delete(key)
            return
        storage = self.store
        client = storage.connection.meta.client
        object_key = storage._normalize_name(key)
        paginator = client.get_paginator("list_object_versions")
        with self._answered():
            for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=object_key):
                for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if version["Key"] == object_key:
                        client.delete_object(
                            Bucket=storage.bucket_name,
                            Key=object_key,
                            VersionId=version["VersionId"],
                        )

    def open_reader(self, key: str) -> BinaryIO:
        """The object's body as it streams (S3Storage.open would download it whole first)."""
        storage = self.store
        client = storage.connection.meta.client
        try:
            with self._answered():
                response = client.get_object(
                    Bucket=storage.bucket_name, Key=storage._normalize_name(key)
                )
        except client.exceptions.NoSuchKey as exc:
            raise ArtifactMissing(f"{key} is missing from {self.label}") from exc
        return response["Body"]

    def size(self, key: str) -> int | None:
        with self._answered():
            return super().size(key)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """ListObjectsV2 pages of up to 1,000 keys each: one call per 1,000 artifacts."""
        storage = self.store
        client = storage.connection.meta.client
        folder = storage._normalize_name(prefix.strip("/")) + "/"
        location = storage.location.strip("/")
        strip = len(location) + 1 if location else 0
        found = {}
        paginator = client.get_paginator("list_objects_v2")
        with self._answered():
            for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=folder):
                for item in page.get("Contents", []):
                    rest = item["Key"][len(folder) :]
                    if rest and "/" not in rest:
                        found[item["Key"][strip:]] = int(item["Size"])
        return found

    def discard_partial(self, key: str) -> int:
        """Abort the unfinished multipart uploads of ``key``."""
        storage = self.store
        client = storage.connection.meta.client
        object_key = storage._normalize_name(key)
        removed = 0
        with self._answered():
            listing = client.list_multipart_uploads(Bucket=storage.bucket_name, Prefix=object_key)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == object_key:
                    client.abort_multipart_upload(
                        Bucket=storage.bucket_name, Key=object_key, UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def probe_storage(self) -> S3Storage:
        """One attempt per call, so that a filtered port costs one connect timeout."""
        return self.storage(S3Timeouts.for_connection_test())

    def probe_wait_seconds(self) -> float:
        return S3Timeouts.for_connection_test().longest_unanswered_call()

    def explain(self, exc: BaseException) -> BaseException:
        """botocore's "no answer" errors as DestinationNotAnswering, which says what the
        endpoint did (refused, accepted but silent, unreachable) and after how long."""
        if not isinstance(exc, _NO_ANSWER):
            return exc
        timeouts = self.timeouts or S3Timeouts.configured()
        endpoint = _endpoint_of(exc) or self.config.get("endpoint_url") or "the S3 endpoint"
        tries = "once" if timeouts.attempts == 1 else f"{timeouts.attempts} times"
        if isinstance(exc, ReadTimeoutError) or _timed_out(exc):
            what = f"accepted the connection but did not answer within {timeouts.read:g} s"
        elif isinstance(exc, ConnectTimeoutError):
            what = f"could not be reached: no connection within {timeouts.connect:g} s"
        elif isinstance(exc, ConnectionClosedError):
            what = "closed the connection without answering"
        elif _refused(exc):
            what = "refused the connection"
        else:
            what = f"could not be reached ({_root_cause(exc)})"
        explained = DestinationNotAnswering(f"S3 endpoint {endpoint} {what} (tried {tries}).")
        explained.__cause__ = exc
        return explained

    @contextlib.contextmanager
    def _answered(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            explained = self.explain(exc)
            if explained is exc:
                raise
            raise explained from exc

    def unreachable(self, exc: BaseException) -> bool:
        """Only an answer in S3's own terms (a ClientError) is an answer: anything else
        (DNS, refused, filtered, reset, a service that does not speak HTTP) is not."""
        return not isinstance(exc, ClientError)


def _part_size_problem(value) -> str | None:
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not text.isdecimal() or int(text) not in PART_SIZE_MB_RANGE:
        return (
            f"part_size_mb must be a whole number of MiB from {PART_SIZE_MB_RANGE.start} to "
            f"{PART_SIZE_MB_RANGE.stop - 1} (S3's part sizes), not {str(value)[:40]!r}."
        )
    return None


def _endpoint_problem(value) -> str | None:
    parts = urlsplit(str(value).strip())
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return f"endpoint_url {str(value)[:200]!r} has an invalid port."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "endpoint_url must be an http:// or https:// URL with a host, "
            f"not {str(value)[:200]!r}."
        )
    return None


def _bucket_problem(value) -> str | None:
    if not _BUCKET_NAME.fullmatch(str(value)):
        return (
            "bucket must be a bucket name: 3 to 255 letters, digits, dots, hyphens or "
            "underscores, starting and ending with a letter or digit."
        )
    return None


def _region_problem(value) -> str | None:
    if not _REGION_NAME.fullmatch(str(value)):
        return "region must be a region name such as eu-west-1: letters, digits and hyphens."
    return None


def _endpoint_of(exc: BaseException) -> str:
    """The scheme and host the failed call went to (botocore's URL also has the key)."""
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "kwargs", {}).get("error") or exc.__cause__ or exc.__context__


def _refused(exc: BaseException) -> bool:
    return any(isinstance(cause, ConnectionRefusedError) for cause in _causes(exc))


def _timed_out(exc: BaseException) -> bool:
    """A connection closed by our side's read timeout while the request was still going
    out (a store that stopped reading mid-upload): the store did not answer in time."""
    return isinstance(exc, ConnectionClosedError) and any(
        isinstance(cause, TimeoutError) for cause in _causes(exc)
    )


def _root_cause(exc: BaseException) -> str:
    *_, last = _causes(exc)
    return str(last)[:200]


def _lock_mode_problem(value) -> str | None:
    if str(value).lower() not in OBJECT_LOCK_MODES:
        return (
            "object_lock_mode must be governance or compliance (or empty for no lock), "
            f"not {str(value)[:40]!r}."
        )
    return None


def _lock_min_days_problem(value) -> str | None:
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not text.isdecimal() or int(text) not in OBJECT_LOCK_MIN_DAYS_RANGE:
        return (
            f"object_lock_min_days must be a whole number of days from "
            f"{OBJECT_LOCK_MIN_DAYS_RANGE.start} to {OBJECT_LOCK_MIN_DAYS_RANGE.stop - 1}, "
            f"not {str(value)[:40]!r}."
        )
    return None
