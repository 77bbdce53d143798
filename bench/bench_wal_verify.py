"""Benchmark: what the WAL archive verification (``pitr.verify``) costs per 1,000 segments.

Run: .venv/bin/python bench/bench_wal_verify.py [--segments 1000] [--stored-kib 1024]

Makes ``--segments`` archived WAL rows of one database whose stored artifacts (random
bytes, ``--stored-kib`` each: a compressed segment) sit in a local destination and in an
S3 bucket (a moto server on loopback), then times ``wal_verify`` on each:

- listing only (``reread_budget=0``): every file checked for presence and size;
- full re-read: every artifact read back whole and its SHA-256 compared.

Prints seconds and calls per 1,000 segments; the re-read also as MB/s, so that the cost of
another stored size follows (it is proportional to the bytes read).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(var: Path) -> None:
    os.environ.update(
        STRONGBOX_VAR_DIR=str(var),
        STRONGBOX_TENANT_ROOT=str(var / "tenants"),
        DJANGO_SETTINGS_MODULE="config.settings.local",
        STRONGBOX_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def moto(port: int) -> subprocess.Popen:
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    proc = subprocess.Popen(  # noqa: S603
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--stored-kib", type=int, default=1024)
    parser.add_argument("--port", type=int, default=45731)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-wal-verify-"))
    server = moto(args.port)
    try:
        setup(var)
        run(var, args)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(var, ignore_errors=True)


def run(var: Path, args) -> None:
    import boto3

    from backups.models import WalSegment
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project
    from pitr import physical
    from pitr.verify import wal_verify

    organisation = Organisation.objects.create(slug="bench", name="Bench")
    project = Project.objects.create(organisation=organisation, slug="bench", name="Bench")
    environment = Environment.objects.create(project=project, slug="bench", name="Bench")
    endpoint = f"http://127.0.0.1:{args.port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto's
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="bench-wal")
    local_root = var / "tenants" / "bench" / "archive"
    destinations = {
        "local": Destination.objects.create(
            organisation=organisation, name="Disk", kind="local", config={"path": str(local_root)}
        ),
        "s3": Destination.objects.create(
            organisation=organisation,
            name="Bucket",
            kind="s3",
            config={
                "bucket": "bench-wal",
                "prefix": "wal",
                "region": "us-east-1",
                "endpoint_url": endpoint,
            },
            secrets={"access_key_id": "bench", "secret_access_key": "bench"},
        ),
    }
    rng = random.Random(20)
    size = args.stored_kib << 10
    for kind, destination in destinations.items():
        database = Database.objects.create(
            environment=environment, name=kind, slug=kind, engine="postgresql", host="127.0.0.1"
        )
        rows = []
        for number in range(1, args.segments + 1):
            name = physical.segment_name(1, number)
            key = f"bench/bench/bench/wal/{kind}/{name}.zst"
            data = rng.randbytes(size)
            if kind == "local":
                path = local_root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            else:
                client.put_object(Bucket="bench-wal", Key=f"wal/{key}", Body=data)
            rows.append(
                WalSegment(
                    organisation=organisation,
                    environment=environment,
                    database=database,
                    name=name,
                    timeline=1,
                    segment_number=number,
                    size=16 << 20,
                    stored_size=size,
                    checksum_sha256="0" * 64,
                    artifact_sha256=hashlib.sha256(data).hexdigest(),
                    key=key,
                )
            )
        WalSegment.objects.bulk_create(rows)
        through = WalSegment.destinations.through
        through.objects.bulk_create(
            through(walsegment_id=row.pk, destination_id=destination.pk) for row in rows
        )
        per = 1000 / args.segments
        started = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            cProfile.runctx(
                "wal_verify(database=database, reread_budget=0, alert=False)",
                globals(),
                locals(),
                sort="cumtime",
            )
        listing = wal_verify(database=database, reread_budget=0, alert=False)
        list_s = time.perf_counter() - started
        assert listing.listed == args.segments and not listing.problems, listing
        started = time.perf_counter()
        full = wal_verify(database=database, reread_budget=1 << 62, alert=False)
        full_s = time.perf_counter() - started
        assert full.reread == args.segments and not full.problems, full
        mb = full.reread_bytes / 1e6
        print(
            f"{kind}: {args.segments} segments of {args.stored_kib} KiB stored; listing "
            f"{list_s * per:.3f} s and {listing.listing_calls * per:.0f} listing call(s) per "
            f"1,000; full re-read {full_s * per:.2f} s per 1,000 ({mb / full_s:.0f} MB/s, "
            f"listing included)"
        )


if __name__ == "__main__":
    main()
