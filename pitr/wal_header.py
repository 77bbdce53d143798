"""What a WAL segment's first page header says, read without pg_waldump.

Every segment starts with an ``XLogLongPageHeaderData`` (PostgreSQL's
``src/include/access/xlog_internal.h``), in the server's byte order (little-endian on every
platform Strongbox runs on)::

    offset  0  uint16  xlp_magic        WAL format version (0xD110 for PostgreSQL 15)
            2  uint16  xlp_info         XLP_LONG_HEADER (0x0002) on a segment's first page
            4  uint32  xlp_tli          timeline of the first record on the page
            8  uint64  xlp_pageaddr     WAL position of this page (segment number * size)
           16  uint32  xlp_rem_len      (a record continued from the previous segment)
           24  uint64  xlp_sysid        the cluster's system identifier (from initdb)
           32  uint32  xlp_seg_size     wal_segment_size
           36  uint32  xlp_xlog_blcksz  XLOG_BLCKSZ

Forty bytes tell the archive what it used to ask pg_waldump or the file size for: the real
segment size, and that the file is the segment its name says (a recycled file that still
holds an older segment's bytes has another ``xlp_pageaddr``) of a known format. The system
identifier names the cluster, so two clusters archiving under one name are told apart.

No Django imports: the archive_command's fast path may read it before Django starts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

LONG_HEADER = struct.Struct("<HHIQI4xQII")
XLP_LONG_HEADER = 0x0002
# XLOG_PAGE_MAGIC of each major version whose WAL Strongbox has been run against.
MAGIC_VERSIONS = {0xD101: 12, 0xD106: 13, 0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17}


class BadSegmentHeader(ValueError):
    """The file does not start like the WAL segment it is named after."""


@dataclass(frozen=True)
class SegmentHeader:
    magic: int
    info: int
    timeline: int
    page_address: int
    system_identifier: int
    segment_size: int
    block_size: int

    @property
    def server_major(self) -> int | None:
        return MAGIC_VERSIONS.get(self.magic)

    @property
    def segment_number(self) -> int:
        return self.page_address // self.segment_size


def parse_segment_header(data: bytes) -> SegmentHeader:
    """The long page header at the start of ``data``; raises BadSegmentHeader when it is
    not one (too short, no long-header flag, an impossible segment or block size)."""
    if len(data) < LONG_HEADER.size:
        raise BadSegmentHeader(f"{len(data)} bytes is too short for a WAL segment header")
    magic, info, tli, pageaddr, _rem_len, sysid, seg_size, blcksz = LONG_HEADER.unpack_from(data)
    if magic >> 8 != 0xD1:
        raise BadSegmentHeader(f"magic {magic:#06x} is not a PostgreSQL WAL page's")
    if not info & XLP_LONG_HEADER:
        raise BadSegmentHeader("the first page has no long header: not a segment's start")
    if not _power_of_two(seg_size, 1 << 20, 1 << 30) or not _power_of_two(blcksz, 1024, 1 << 16):
        raise BadSegmentHeader(f"segment size {seg_size} / block size {blcksz} are impossible")
    if pageaddr % seg_size:
        raise BadSegmentHeader(f"page address {pageaddr:#x} is not a segment boundary")
    return SegmentHeader(magic, info, tli, pageaddr, sysid, seg_size, blcksz)


def read_segment_header(path: str | Path) -> SegmentHeader:
    with open(path, "rb") as handle:
        return parse_segment_header(handle.read(LONG_HEADER.size))


def check_segment(header: SegmentHeader, *, timeline: int, number: int) -> None:
    """Raise BadSegmentHeader unless the header is the one of segment ``number`` on
    ``timeline`` (the file name's, parsed with the header's segment size)."""
    if header.segment_number != number:
        raise BadSegmentHeader(
            f"the file holds the segment at {header.page_address:#x} (a recycled file?), "
            "not the one its name says"
        )
    # A segment's first page carries the timeline of the record that starts on it; the first
    # segment of a new timeline still begins with the old timeline's bytes, so lower is fine.
    if header.timeline > timeline:
        raise BadSegmentHeader(f"the header's timeline {header.timeline} is after the name's")


def _power_of_two(value: int, low: int, high: int) -> bool:
    return low <= value <= high and value & (value - 1) == 0
