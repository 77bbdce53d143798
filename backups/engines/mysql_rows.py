"""Count the rows of each table in a mariadb-dump/mysqldump stream as it passes, so the counts
describe exactly the data in the dump (its own snapshot) and cost the server nothing.

The server cannot share one snapshot between two sessions, so a COUNT(*) on our own
connection, before or after the dump, disagrees with the dump's data while the database is
being written; counting the dump's INSERT statements does not.

What the parser relies on (the dump tool's output with ``--opt``, the default):

- a table's data sits between the lines ``LOCK TABLES `t` WRITE;`` and ``UNLOCK TABLES;``
  (stored programs may not contain LOCK TABLES, and a false start is refused below);
- inside it, only ``/*!40000 ALTER TABLE … KEYS */;`` lines and extended INSERTs:
  ``INSERT INTO `t` [(`columns`)] VALUES`` followed by tuples, one per line (MariaDB since
  10.x) or all on one line (mysqldump);
- a value is a number, NULL, 0x… (``--hex-blob``) or a '…' string in which the tool escaped
  ``\\``, ``'``, newline and CR with a backslash, so a raw newline is never inside a value
  and a ``(`` outside strings opens a tuple.

The fast path counts lines: a run of complete lines that all start with ``(`` and hold no
other ``(`` is one tuple per line (two C-level ``count`` calls per chunk). Anything else
(a ``(`` inside a string, mysqldump's one-line form, a line longer than a chunk) goes
through the exact scan, which strips escaped quotes and splits on the rest. A stream that
does not look like the above sets ``failed`` instead of guessing.
"""

from __future__ import annotations

import re

# A line start we may hold back until its kind is known (LOCK/INSERT headers, comments).
_HEAD_LIMIT = 1024 * 1024
_LOCK_LINE = re.compile(rb"LOCK TABLES (`(?:[^`]|``)+`) WRITE;\n")
_COLUMN_LIST = re.compile(rb"\((?:`(?:[^`]|``)*`|[^`)])*\) VALUES")
_NOT_A_TUPLE_LINE = re.compile(rb"\n[^(]")
_UNLOCK = b"UNLOCK TABLES;\n"


class DumpRowCounter:
    """Feed it the dump's bytes in order; ``counts`` maps each table to its rows once the
    stream has ended (``finish``). ``failed`` says why the counts cannot be trusted."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.failed: str | None = None
        self._held = b"\n"  # the stream starts at a line start
        self._table: str | None = None  # inside this table's data section
        self._insert_prefix = b""
        self._rows = 0
        self._mid_tuple_line = False  # inside a tuple line that began in an earlier chunk
        self._in_string = False
        self._escape = False

    def feed(self, data: bytes | memoryview) -> None:
        if self.failed is not None or not data:
            return
        text = self._held + data if self._held else bytes(data)  # a view of the pipeline's chunk
        self._held = b""
        pos = 0
        try:
            while pos < len(text) and self.failed is None:
                if self._table is None:
                    pos = self._outside(text, pos)
                else:
                    pos = self._inside(text, pos)
                if pos < 0:  # the rest is held back for the next chunk
                    break
        except ValueError as exc:
            self.failed = str(exc)

    def finish(self) -> dict[str, int]:
        if self.failed is None and (self._table is not None or self._in_string):
            self.failed = "the dump ended inside a table's data"
        return self.counts

    # -- outside any table's data: look for the next LOCK TABLES line -------------------------

    def _outside(self, text: bytes, pos: int) -> int:
        # `pos` is just after a newline or at one ("\n" starts the stream and held text).
        start = text.find(b"\nLOCK TABLES ", pos - 1 if pos else 0)
        if start < 0:
            newline = text.rfind(b"\n", pos)
            if newline >= 0 and len(text) - newline < 4096:
                self._held = text[newline:]  # may be the start of a LOCK line
            return -1
        end = text.find(b"\n", start + 1)
        if end < 0:
            if len(text) - start > _HEAD_LIMIT:
                raise ValueError("a LOCK TABLES line longer than any table name")
            self._held = text[start:]
            return -1
        match = _LOCK_LINE.fullmatch(text, start + 1, end + 1)
        if match is None:
            return end  # not the dump's own lock line (text in a stored program)
        quoted = match.group(1)
        self._table = quoted[1:-1].replace(b"``", b"`").decode("utf-8", errors="replace")
        self._insert_prefix = b"INSERT INTO " + quoted + b" "
        self._rows = 0
        return end + 1

    # -- inside a table's data section ----------------------------------------------------------

    def _inside(self, text: bytes, pos: int) -> int:
        if self._mid_tuple_line:
            return self._finish_tuple_line(text, pos)
        first = text[pos : pos + 1]
        if first == b"(":
            return self._tuple_lines(text, pos)
        if text.startswith(b"/*!", pos):
            end = text.find(b"\n", pos)
            return self._hold(text, pos) if end < 0 else end + 1
        if text.startswith(_UNLOCK, pos):
            assert self._table is not None  # noqa: S101 - _inside runs only inside a table
            self.counts[self._table] = self.counts.get(self._table, 0) + self._rows
            self._table = None
            return pos + len(_UNLOCK) - 1  # _outside starts at the newline
        if text.startswith(self._insert_prefix, pos):
            return self._insert_header(text, pos)
        rest = text[pos : pos + len(self._insert_prefix)]
        if any(token.startswith(rest) for token in (self._insert_prefix, _UNLOCK, b"/*!")):
            return self._hold(text, pos)  # too short to tell yet
        raise ValueError(f"unexpected line in the data of table {self._table!r}: {rest[:40]!r}")

    def _hold(self, text: bytes, pos: int) -> int:
        if len(text) - pos > _HEAD_LIMIT:
            raise ValueError(f"a header line of table {self._table!r} too long to read")
        self._held = text[pos:]
        return -1

    def _insert_header(self, text: bytes, pos: int) -> int:
        after = pos + len(self._insert_prefix)
        if text.startswith(b"(", after):  # a column list (invisible or generated columns)
            match = _COLUMN_LIST.match(text, after)
            if match is None:
                return self._hold(text, pos)
            after = match.end()
        elif text.startswith(b"VALUES", after):
            after += len(b"VALUES")
        elif len(text) - after < len(b"VALUES"):
            return self._hold(text, pos)
        else:
            raise ValueError(f"an INSERT of table {self._table!r} without VALUES")
        if len(text) <= after:
            return self._hold(text, pos)
        if text[after : after + 1] == b"\n":
            return after + 1  # tuples start on the next line
        if text[after : after + 1] != b" ":
            raise ValueError(f"an INSERT of table {self._table!r} in an unknown form")
        # mysqldump's form: the tuples follow on this line.
        self._mid_tuple_line = True
        return self._finish_tuple_line(text, after + 1)

    def _tuple_lines(self, text: bytes, pos: int) -> int:
        """Complete lines that each start a tuple, then the start of an unfinished one."""
        other = _NOT_A_TUPLE_LINE.search(text, pos)
        if other is not None:
            stop = other.start() + 1
        else:
            newline = text.rfind(b"\n", pos)
            stop = newline + 1 if newline >= 0 else pos
        if stop > pos:
            lines = text[pos:stop]
            newlines = lines.count(b"\n")
            if lines.count(b"(") == newlines:
                self._rows += newlines
            else:
                self._scan(lines)
                if self._in_string or self._escape:
                    raise ValueError(f"a value of table {self._table!r} left open at a line end")
        if other is not None or stop == len(text):
            return stop
        self._mid_tuple_line = True
        return self._finish_tuple_line(text, stop)

    def _finish_tuple_line(self, text: bytes, pos: int) -> int:
        end = text.find(b"\n", pos)
        if end < 0:
            self._scan(text[pos:])
            return len(text)
        self._scan(text[pos : end + 1])
        if self._in_string or self._escape:
            raise ValueError(f"a value of table {self._table!r} left open at a line end")
        self._mid_tuple_line = False
        return end + 1

    def _scan(self, piece: bytes) -> None:
        """Count the ( outside strings; the string state carries over between pieces."""
        if self._escape:  # the last piece ended on a backslash inside a string
            piece = piece[1:]
            self._escape = False
        if b"\\" in piece:
            # Backslashes only occur inside strings; drop escaped backslashes, then escaped
            # quotes, so every ' left opens or closes a string.
            piece = piece.replace(b"\\\\", b"").replace(b"\\'", b"")
            if piece.endswith(b"\\"):
                piece = piece[:-1]
                self._escape = True
        parts = piece.split(b"'")
        outside = parts[1::2] if self._in_string else parts[::2]
        self._rows += b"".join(outside).count(b"(")
        if len(parts) % 2 == 0:
            self._in_string = not self._in_string
