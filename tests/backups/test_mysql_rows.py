"""The dump-stream row counter on hand-written dumps in both INSERT forms, split at every
byte, and on the real tool's output (tests/backups/test_engine_mysql.py)."""

from __future__ import annotations

from backups.engines.mysql_rows import DumpRowCounter

# MariaDB's form: one tuple per line; strings hold every character the parser cares about.
MARIADB_DUMP = b"""-- MariaDB dump 10.19
/*!40101 SET NAMES utf8mb4 */;
DROP TABLE IF EXISTS `notes`;
CREATE TABLE `notes` (
  `id` int(11) NOT NULL,
  `body` text
);
LOCK TABLES `notes` WRITE;
/*!40000 ALTER TABLE `notes` DISABLE KEYS */;
INSERT INTO `notes` VALUES
(1,'plain'),
(2,'a ( paren'),
(3,'it\\'s ),( not a tuple'),
(4,'ends in a backslash \\\\'),
(5,'\\\\\\' both (\\n'),
(6,NULL),
(7,0x28272829);
INSERT INTO `notes` VALUES
(8,'second statement');
/*!40000 ALTER TABLE `notes` ENABLE KEYS */;
UNLOCK TABLES;
LOCK TABLES `empty` WRITE;
/*!40000 ALTER TABLE `empty` DISABLE KEYS */;
/*!40000 ALTER TABLE `empty` ENABLE KEYS */;
UNLOCK TABLES;
LOCK TABLES `we(ird``'name` WRITE;
INSERT INTO `we(ird``'name` (`id`, `col(umn`, `hidden`) VALUES
(1,'x',3),
(2,'y',3);
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER t BEFORE INSERT ON `notes` FOR EACH ROW
INSERT INTO `notes` VALUES
(99,'inside a trigger') */;;
DELIMITER ;
-- Dump completed
"""
MARIADB_COUNTS = {"notes": 8, "empty": 0, "we(ird`'name": 2}

# mysqldump's form: every tuple of a statement on one line.
MYSQLDUMP_DUMP = (
    b"LOCK TABLES `t` WRITE;\n"
    b"INSERT INTO `t` VALUES (1,'a'),(2,'b(\\')'),(3,'),('),(4,NULL);\n"
    b"INSERT INTO `t` VALUES (5,'\\\\');\n"
    b"UNLOCK TABLES;\n"
)


def count(chunks: list[bytes]) -> DumpRowCounter:
    counter = DumpRowCounter()
    for chunk in chunks:
        counter.feed(chunk)
    counter.finish()
    return counter


def every_split(data: bytes) -> list[list[bytes]]:
    """The stream in one piece, byte by byte, and cut in two at every offset."""
    splits = [[data], [data[i : i + 1] for i in range(len(data))]]
    splits += [[data[:i], data[i:]] for i in range(1, len(data))]
    return splits


def test_it_counts_one_tuple_per_line_whatever_the_strings_hold() -> None:
    counter = count([MARIADB_DUMP])

    assert counter.failed is None
    assert counter.counts == MARIADB_COUNTS


def test_the_counts_do_not_depend_on_where_the_stream_is_cut() -> None:
    for chunks in every_split(MARIADB_DUMP):
        counter = count(chunks)
        assert (counter.failed, counter.counts) == (None, MARIADB_COUNTS), [len(c) for c in chunks]


def test_it_counts_mysqldumps_one_line_inserts_at_every_cut() -> None:
    for chunks in every_split(MYSQLDUMP_DUMP):
        counter = count(chunks)
        assert (counter.failed, counter.counts) == (None, {"t": 5}), [len(c) for c in chunks]


def test_a_tuple_line_longer_than_any_chunk_is_counted_without_holding_it() -> None:
    big = b"(1,'" + b"x(" * 500_000 + b"'),\n(2,'" + b"\\'" * 300_000 + b"');\n"
    data = b"LOCK TABLES `t` WRITE;\nINSERT INTO `t` VALUES\n" + big + b"UNLOCK TABLES;\n"
    counter = DumpRowCounter()
    for i in range(0, len(data), 65536):
        counter.feed(data[i : i + 65536])
        assert len(counter._held) < 65536  # noqa: SLF001 - memory stays bounded

    assert (counter.finish(), counter.failed) == ({"t": 2}, None)


def test_a_stream_it_does_not_understand_is_reported_not_guessed() -> None:
    odd = b"LOCK TABLES `t` WRITE;\nREPLACE INTO `t` VALUES\n(1);\nUNLOCK TABLES;\n"

    counter = count([odd])

    assert counter.failed is not None and "unexpected line" in counter.failed


def test_a_dump_cut_off_inside_a_table_is_reported() -> None:
    counter = count([MARIADB_DUMP[: MARIADB_DUMP.index(b"(5,")]])

    assert counter.failed == "the dump ended inside a table's data"
