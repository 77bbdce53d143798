import re
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage

from destinations.backends.base import DestinationBackend, Parameter
from destinations.storage import ArtifactMissing
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
        Parameter("access_key_id", required=True),
        Parameter("secret_access_key", required=True),
    )
    sensitive_parameters = ("access_key_id", "secret_access_key")
    # A multipart upload the store never heard the end of stays (and is billed) until aborted.
    leaves_unfinished_uploads = True

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
        }
        for name, check in checks.items():
            value = config.get(name)
            if value not in (None, "") and name not in problems:
                if problem := check(value):
                    problems[name] = problem
        return problems

    def storage(self) -> S3Storage:
        """The bucket's Storage; HostNotAllowed (an OSError) when the organisation's host
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
        )

    def describe(self) -> str:
        prefix = self.config.get("prefix", "").strip("/")
        return f"s3://{self.config.get('bucket', '')}/{prefix}".rstrip("/")

    def open_reader(self, key: str) -> BinaryIO:
        """The object's body as it streams (S3Storage.open would download it whole first)."""
        storage = self.store
        client = storage.connection.meta.client
        try:
            response = client.get_object(
                Bucket=storage.bucket_name, Key=storage._normalize_name(key)
            )
        except client.exceptions.NoSuchKey as exc:
            raise ArtifactMissing(f"{key} is missing from {self.label}") from exc
        return response["Body"]

    def discard_partial(self, key: str) -> int:
        """Abort the unfinished multipart uploads of ``key``."""
        storage = self.store
        client = storage.connection.meta.client
        object_key = storage._normalize_name(key)
        listing = client.list_multipart_uploads(Bucket=storage.bucket_name, Prefix=object_key)
        removed = 0
        for upload in listing.get("Uploads", []):
            if upload["Key"] == object_key:
                client.abort_multipart_upload(
                    Bucket=storage.bucket_name, Key=object_key, UploadId=upload["UploadId"]
                )
                removed += 1
        return removed

    def probe_storage(self, *, connect_timeout: float, read_timeout: float) -> S3Storage:
        """One attempt with short timeouts, so that a filtered port costs one connect
        timeout rather than botocore's minute-long default and retries."""
        storage = self.storage()
        storage.client_config = storage.client_config.merge(
            Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"total_max_attempts": 1},
            )
        )
        return storage

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
