from storages.backends.s3 import S3Storage

from destinations.backends.base import DestinationBackend, Parameter

# Multipart parts of 16 MiB with two uploads in flight bound the memory an upload
# of a non-seekable stream may hold, whatever the artifact's size.
MULTIPART_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CONCURRENT_PARTS = 2


class S3Backend(DestinationBackend):
    kind = "s3"
    parameters = (
        Parameter("bucket", required=True),
        Parameter("prefix", help="Key prefix inside the bucket."),
        Parameter("region"),
        Parameter("endpoint_url", help="For S3-compatible stores (MinIO, R2, Ceph…)."),
        Parameter("access_key_id", required=True),
        Parameter("secret_access_key", required=True),
    )
    sensitive_parameters = ("access_key_id", "secret_access_key")

    def storage(self) -> S3Storage:
        from boto3.s3.transfer import TransferConfig

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
            transfer_config=TransferConfig(
                multipart_threshold=MULTIPART_CHUNK_SIZE,
                multipart_chunksize=MULTIPART_CHUNK_SIZE,
                max_concurrency=MAX_CONCURRENT_PARTS,
                use_threads=True,
            ),
        )

    def describe(self) -> str:
        prefix = self.config.get("prefix", "").strip("/")
        return f"s3://{self.config.get('bucket', '')}/{prefix}".rstrip("/")
