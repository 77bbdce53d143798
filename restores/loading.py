"""Scratch targets: load a dump beside the live target, count it, then swap it in.

No Django imports: the restore service decides *what* goes where; this module does the
engine-specific work on plain ConnectionSpecs and streams.

Why a scratch copy: a load that fails half-way (a bad dump, a killed tool, a full disk)
must leave the live target exactly as it was. So every member is first loaded into a
scratch copy on the same server or file system, its row counts are checked, and only then
is it swapped in. A swap keeps the previous target under a reserved name
(``kept_spec``: ``<name>_sbx_prev_<tag>``, ``.<name>.sbx-prev-<tag>``) until every member of
the restore is swapped: then ``drop_kept`` drops it, or ``put_back`` puts it back in place
(every member of a restore that failed, from wherever its swap stopped: the reaper calls it
too, after a worker died).

- PostgreSQL: ``ALTER DATABASE … RENAME`` twice in one transaction (target to its kept
  name, scratch in), after terminating the connections to both; putting back is the same
  two renames the other way. Objects get their owners and GRANTs back when the server has
  the roles, and the scratch database takes the target's own GRANTs and settings just
  before the swap (``restores.pg_access``).
- MariaDB/MySQL have no RENAME DATABASE. Tables move between databases with one
  multi-table ``RENAME TABLE`` statement, which the server applies atomically (all or
  nothing). Views, triggers, routines and events cannot move that way: they are read
  beforehand, dropped where they pin tables and created again in the target after the
  move, undoing it all if that fails (``restores.mysql_swap``, which says what window
  remains, and keeps a record of the previous objects in the kept database).
- SQLite: the image is written to a scratch file in the target's directory, checked, the
  target is hard-linked to its kept name (with its WAL or journal), then the scratch is
  ``os.replace``d over the target (atomic on POSIX).
- Files: extracted into a scratch directory beside the target, then exchanged with it by
  ``renameat2(RENAME_EXCHANGE)`` (one atomic step on Linux; two renames elsewhere) and the
  previous tree renamed to its kept name. A note beside them (``.<name>.sbx-swapping-<tag>``,
  the previous tree's inode) tells ``put_back`` whether a worker killed between those two
  steps left the previous tree under the scratch's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import BinaryIO

import psycopg
from psycopg import sql

from backups.engines import ConnectionSpec, EngineError, RestoreFailed, get_engine
from backups.engines.base import run_restore
from backups.engines.mysql import CLIENT_TOOLS, MySQLEngine, write_defaults_file
from backups.engines.postgresql import USER_TABLES, PostgreSQLEngine
from backups.engines.sqlite import SIDE_FILES
from backups.ephemeral_spool import EphemeralSpool
from restores import mysql_swap, pg_access
from restores.mysql_swap import SwapIncomplete as SwapIncomplete

Tick = Callable[[], None]

MYSQL_FAMILY = ("mysql", "mariadb")
# Identifiers: PostgreSQL allows 63 bytes, MariaDB 64 characters.
NAME_ROOM = 40
SWAP_ATTEMPTS = 5
# Parallel pg_restore jobs for a PostgreSQL dump's post-data section (index builds and
# constraints, often a third of a load); 1 loads the whole dump in one streamed pg_restore.
POST_DATA_JOBS = 2
# What a scratch PostgreSQL database is created with ({icu}: a column, PG 15+); its GRANTs
# and settings are copied just before the swap (pg_access.copy_database_access).
PG_DATABASE_PROPERTIES = (
    "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba), {icu}"
    " FROM pg_database WHERE datname = %s"
)


class SwapRefused(RestoreFailed):
    """The scratch copy cannot be swapped in safely; nothing was changed."""


def _noop() -> None:
    return None


# --- naming ------------------------------------------------------------------------------


def scratch_spec(
    target: ConnectionSpec, tag: str, *, purpose: str = "restore", directory: str | None = None
) -> ConnectionSpec:
    """The scratch twin of ``target``: a database on the same server, or a path beside it.

    ``directory`` puts a SQLite or files scratch elsewhere (test restores use the worker's
    temporary directory, since nothing is swapped in).
    """
    if target.engine == "postgresql" or target.engine in MYSQL_FAMILY:
        base = target.name.encode()[:NAME_ROOM].decode(errors="ignore")
        return replace(target, name=f"{base}_sbx_{purpose}_{tag}")
    path = os.path.abspath(target.name.rstrip("/"))
    where = directory or os.path.dirname(path)
    leaf = f".{os.path.basename(path)}.sbx-{purpose}-{tag}"
    return replace(target, name=os.path.join(where, leaf))


# --- prepare, load, count, discard ---------------------------------------------------------


def prepare(scratch: ConnectionSpec, *, like: ConnectionSpec | None = None) -> None:
    """Create an empty scratch (dropping a leftover of the same name first)."""
    discard(scratch)
    if scratch.engine == "files":
        os.makedirs(scratch.name)
        if like is not None and os.path.isdir(like.name):
            os.chmod(scratch.name, stat.S_IMODE(os.stat(like.name).st_mode))
    elif scratch.engine == "postgresql" and like is not None:
        _create_postgresql_like(scratch, like)
    elif scratch.engine != "sqlite":  # SQLite: the load writes the file itself
        get_engine(scratch.engine).create_database(scratch)


def _create_postgresql_like(scratch: ConnectionSpec, like: ConnectionSpec) -> None:
    """A scratch database with the target's encoding, locale and owner.

    The dump does not carry them (it restores into an existing database), so a scratch made
    with the server's defaults would silently change the target's collation when swapped in.
    The owner is best effort: a role without the right keeps the default.
    """
    with _pg_maintenance(like) as conn:
        properties = _pg_properties(conn, like.name)
        if properties is None:
            get_engine("postgresql").create_database(scratch)
            return
        _pg_create(conn, scratch.name, properties)


def _recreate_postgresql(scratch: ConnectionSpec) -> None:
    """Drop a scratch database and create it again, empty, as it was first created."""
    with _pg_maintenance(scratch) as conn:
        properties = _pg_properties(conn, scratch.name)
    discard(scratch)
    if properties is None:
        get_engine("postgresql").create_database(scratch)
        return
    with _pg_maintenance(scratch) as conn:
        _pg_create(conn, scratch.name, properties)


def _pg_properties(conn: psycopg.Connection, name: str) -> tuple | None:
    icu = "daticulocale" if conn.info.server_version >= 150000 else "NULL"
    query = PG_DATABASE_PROPERTIES.format(icu=icu)
    return conn.execute(query, (name,)).fetchone()  # type: ignore[call-overload]


def _pg_create(conn: psycopg.Connection, name: str, properties: tuple) -> None:
    encoding, collate, ctype, owner, icu_locale = properties
    create = sql.SQL(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
    ).format(
        sql.Identifier(name),
        sql.Literal(encoding),
        sql.Literal(collate),
        sql.Literal(ctype),
    )
    if icu_locale:
        create += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(icu_locale))
    try:
        conn.execute(create)
    except psycopg.Error as exc:
        raise RestoreFailed(f"cannot create the scratch database {name}: {exc}") from exc
    with contextlib.suppress(psycopg.Error):
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )


Reopen = Callable[[], contextlib.AbstractContextManager[BinaryIO]]


def load(
    scratch: ConnectionSpec,
    stream: BinaryIO,
    *,
    tmp_dir: str | None = None,
    tick: Tick = _noop,
    reopen: Reopen | None = None,
) -> list[str]:
    """Load a plaintext dump (as the backup engine wrote it) into a prepared scratch.

    Nothing decrypted is written to disk: every tool reads the stream on its stdin, and what
    must be kept for a while goes to an encrypted ephemeral spool in ``tmp_dir``.
    ``reopen`` gives the same dump again from its start (a PostgreSQL load refused for
    owners the role scan could not foresee is loaded again without them); None: it cannot.

    Returns notes for the restore's message (what of the dump could not be restored as it
    was, e.g. PostgreSQL owners and GRANTs naming roles the target server lacks).
    """
    engine = get_engine(scratch.engine)
    if tmp_dir:
        os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
    if scratch.engine == "postgresql":
        return _load_postgresql(scratch, stream, tmp_dir=tmp_dir, tick=tick, reopen=reopen)
    if scratch.engine in MYSQL_FAMILY:
        tool = next((t for t in CLIENT_TOOLS if shutil.which(t)), None)
        if tool is None:
            engine.require_tools()
            raise RestoreFailed("neither the mariadb nor the mysql client is installed")
        defaults_file = write_defaults_file(scratch, directory=tmp_dir)
        try:
            argv = engine.restore_argv(scratch, tool=tool, defaults_file=defaults_file)
            run_restore(argv, stream, tick=tick)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(defaults_file)
    else:
        # SQLite (verified image written beside the scratch name) and files (safe extraction):
        # the engines read the stream on this thread, so the caller's counting reader ticks.
        engine.restore(scratch, stream)
    return []


def _load_postgresql(
    scratch: ConnectionSpec,
    stream: BinaryIO,
    *,
    tmp_dir: str | None,
    tick: Tick,
    reopen: Reopen | None,
) -> list[str]:
    """pg_restore reading the dump on its stdin, after a role scan of its head.

    The table data is streamed: a parallel pg_restore needs the dump as a seekable plaintext
    file, which is what must never be on disk. What the role scan read (the table of contents
    and a little more) waits in an encrypted spool and is given to the load first; the
    indexes, constraints and the rest of the post-data section need nothing but that table of
    contents, so they are built in parallel from it (``_restore_post_data``).
    """
    engine = PostgreSQLEngine()
    engine.require_tools()
    env = engine.tool_env(scratch)
    with EphemeralSpool(tmp_dir, prefix="strongbox-restore-toc-") as head:
        roles = pg_access.roles_in_stream(stream, head)
        access = pg_access.decide(scratch, roles)
        load = _PostgresLoad(engine, scratch, head, env=env, tick=tick)
        try:
            load.run(pg_access.Rejoined(head.reader(), stream), access.owners, access.privileges)
            return access.notes
        except RestoreFailed as exc:
            refusal = access.refused(str(exc))
            if refusal is None:
                raise
            if reopen is None:
                raise RestoreFailed(
                    f"{exc} (restoring owners and grants failed, and this dump cannot be read "
                    "a second time to load it without them)"
                ) from exc
        # Something the role scan could not foresee (e.g. an owner without CREATE on its
        # schema until the dump's GRANTs run): read the dump again and load it without them.
        _recreate_postgresql(scratch)
        with reopen() as again:
            load.run(again, False, False)
    return access.without(refusal).notes


@dataclass
class _PostgresLoad:
    """One load of a dump into a scratch database: its pre-data and data sections streamed
    into one pg_restore (one transaction), then its post-data section (indexes, constraints,
    triggers, ACLs) by ``POST_DATA_JOBS`` parallel pg_restore jobs reading the table of
    contents alone from ``head``, kept for it in memory (a memfd: never on disk)."""

    engine: PostgreSQLEngine
    scratch: ConnectionSpec
    head: EphemeralSpool
    env: dict[str, str]
    tick: Tick

    def run(self, dump: BinaryIO, owners: bool, privileges: bool) -> None:
        argv = partial(self.engine.restore_argv, self.scratch, owners=owners, privileges=privileges)
        if POST_DATA_JOBS < 2 or not hasattr(os, "memfd_create"):
            run_restore(argv(), dump, env=self.env, tick=self.tick)
            return
        run_restore(argv(sections=("pre-data", "data")), dump, env=self.env, tick=self.tick)
        with _in_memory(self.head) as fd:
            run_restore(
                argv(sections=("post-data",), jobs=POST_DATA_JOBS, path=f"/dev/fd/{fd}"),
                None,
                env=self.env,
                tick=self.tick,
                pass_fds=(fd,),
            )


@contextlib.contextmanager
def _in_memory(spool: EphemeralSpool):
    """A memory-only file holding what ``spool`` holds, as a file descriptor."""
    fd = os.memfd_create("strongbox-restore-toc")
    try:
        reader = spool.reader()
        while data := reader.read(1 << 20):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        yield fd
    finally:
        os.close(fd)


def count(spec: ConnectionSpec) -> dict[str, int]:
    return get_engine(spec.engine).row_counts(spec)


def discard(scratch: ConnectionSpec) -> None:
    """Remove a scratch copy; never raises for one that is not there."""
    if scratch.engine == "files":
        shutil.rmtree(scratch.name, ignore_errors=True)
    else:
        get_engine(scratch.engine).drop_database(scratch)


def holds_data(target: ConnectionSpec) -> bool:
    """Whether the live target has anything a restore would overwrite (any table, any file)."""
    if target.engine == "postgresql":
        try:
            with PostgreSQLEngine().connect(target) as conn:
                query = f"SELECT 1 FROM ({USER_TABLES}) t LIMIT 1"  # noqa: S608 - constant
                return conn.execute(query).fetchone() is not None
        except EngineError:
            if not _pg_database_exists(target):
                return False
            raise
    if target.engine in MYSQL_FAMILY:
        conn = MySQLEngine(target.engine).connect(target, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s",
                    (target.name,),
                )
                return int(cur.fetchone()[0]) > 0
        finally:
            conn.close()
    if target.engine == "sqlite":
        return os.path.isfile(target.name) and bool(count(target))
    if target.engine == "files":
        return os.path.isdir(target.name) and any(os.scandir(target.name))
    raise EngineError(f"restores into {target.engine} are not supported")


# --- swap, keeping the previous target until the whole restore has swapped ---------------


@dataclass
class Swapped:
    """A target with a scratch copy swapped in, its previous contents kept aside."""

    kept: ConnectionSpec | None  # the previous contents; None when the target did not exist
    notes: list[str] = field(default_factory=list)  # for the restore's message


def kept_spec(target: ConnectionSpec, tag: str) -> ConnectionSpec:
    """Where a swap keeps the target's previous contents: a reserved name the reaper knows
    (``<name>_sbx_prev_<tag>``, or ``.<name>.sbx-prev-<tag>`` beside a file or directory)."""
    return scratch_spec(target, tag, purpose="prev")


def swap(target: ConnectionSpec, scratch: ConnectionSpec, *, tag: str) -> list[str]:
    """Swap in one scratch copy and drop the previous target at once (a restore of several
    members swaps them all with ``swap_keeping`` first). Returns notes as ``Swapped``."""
    swapped = swap_keeping(target, scratch, tag=tag)
    if swapped.kept is not None:
        drop_kept(swapped.kept)
    return swapped.notes


def swap_keeping(target: ConnectionSpec, scratch: ConnectionSpec, *, tag: str) -> Swapped:
    """Put the loaded scratch in place of the target, keeping the previous target under
    ``kept_spec`` until ``drop_kept`` (the restore succeeded) or ``put_back`` (it failed).

    A failure raises and leaves the target as it was (``SwapIncomplete``: it could not be,
    and the message says what is where). An existing kept copy is never overwritten.
    """
    kept = kept_spec(target, tag)
    if target.engine == "postgresql":
        return _swap_postgresql(target, scratch, kept)
    if target.engine in MYSQL_FAMILY:
        existed = mysql_swap.swap(target, scratch, kept.name)
        return Swapped(kept if existed else None)
    if target.engine == "sqlite":
        return Swapped(_swap_sqlite(target, scratch, kept))
    if target.engine == "files":
        return Swapped(_swap_files(target, scratch, kept, tag))
    raise EngineError(f"restores into {target.engine} are not supported")


def put_back(target: ConnectionSpec, kept: ConnectionSpec | None, *, tag: str) -> bool:
    """Put the previous contents kept by a swap back in place of the target, from wherever
    the swap stopped; the restored contents are dropped. ``kept=None`` (there was no
    previous target) removes the restored one. False when nothing was kept (no swap).

    Raises RestoreFailed (``SwapIncomplete``: the message says what is where) and never
    drops a kept copy that is not back in place.
    """
    if kept is None:
        discard(target)
        return True
    discard_as = scratch_spec(target, tag)  # the scratch's name is free again after a swap
    if target.engine == "postgresql":
        return _put_back_postgresql(target, kept, discard_as)
    if target.engine in MYSQL_FAMILY:
        return mysql_swap.put_back(target, kept.name, discard_as.name)
    if target.engine == "sqlite":
        return _put_back_sqlite(target, kept)
    if target.engine == "files":
        return _put_back_files(target, kept, discard_as, tag)
    raise EngineError(f"restores into {target.engine} are not supported")


def drop_kept(kept: ConnectionSpec) -> None:
    """Drop a kept previous copy: only once every member of the restore is swapped in."""
    discard(kept)


def _pg_maintenance(spec: ConnectionSpec) -> psycopg.Connection:
    conn = PostgreSQLEngine().connect(spec, dbname=spec.options.get("maintenance_db", "postgres"))
    conn.autocommit = True
    return conn


def _pg_database_exists(spec: ConnectionSpec) -> bool:
    with _pg_maintenance(spec) as conn:
        return _pg_exists(conn, spec.name)


def _pg_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return row.fetchone() is not None


def _pg_rename(conn: psycopg.Connection, renames: list[tuple[str, str]], what: str) -> None:
    """Rename databases in one transaction, after terminating the connections to them."""
    names = [name for pair in renames for name in pair]
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            # Clients reconnect at once; the retry covers one slipping in between.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                (names,),
            )
            with conn.transaction():
                for old, new in renames:
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(old), sql.Identifier(new)
                        )
                    )
            return
        except psycopg.errors.ObjectInUse as exc:
            if attempt == SWAP_ATTEMPTS:
                raise RestoreFailed(
                    f"could not {what}: {renames[0][0]!r} stayed in use ({exc})"
                ) from exc
            time.sleep(0.2 * attempt)
        except psycopg.Error as exc:
            raise RestoreFailed(f"could not {what}: {exc}") from exc


def _swap_postgresql(
    target: ConnectionSpec, scratch: ConnectionSpec, kept: ConnectionSpec
) -> Swapped:
    notes: list[str] = []
    with _pg_maintenance(target) as conn:
        exists = _pg_exists(conn, target.name)
        if exists:
            if _pg_exists(conn, kept.name):
                raise SwapRefused(
                    f"a database {kept.name!r} already exists where the previous "
                    f"{target.name!r} would be kept; the target was not changed"
                )
            # Who may connect, and as what, is the database's, not the dump's: keep it.
            try:
                notes = pg_access.copy_database_access(conn, source=target.name, dest=scratch.name)
            except psycopg.Error as exc:
                raise SwapRefused(
                    f"could not give the restored database the GRANTs of {target.name!r} "
                    f"({exc}); the target was not changed"
                ) from exc
        renames = [(target.name, kept.name)] if exists else []
        _pg_rename(conn, [*renames, (scratch.name, target.name)], "swap in the restored database")
    return Swapped(kept if exists else None, notes)


def _put_back_postgresql(
    target: ConnectionSpec, kept: ConnectionSpec, discard_as: ConnectionSpec
) -> bool:
    with _pg_maintenance(target) as conn:
        if not _pg_exists(conn, kept.name):
            return False
        # Both renames in one transaction, as the swap: the target is never missing.
        renames = [(target.name, discard_as.name)] if _pg_exists(conn, target.name) else []
        _pg_rename(conn, [*renames, (kept.name, target.name)], f"put {target.name!r} back")
    discard(discard_as)
    return True


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_side_files(source: str, dest: str) -> None:
    # A WAL or journal holds part of its database: it goes where the database goes.
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.replace(source + suffix, dest + suffix)


def _swap_sqlite(
    target: ConnectionSpec, scratch: ConnectionSpec, kept: ConnectionSpec
) -> ConnectionSpec | None:
    """A hard link keeps the previous file under the kept name, then the scratch replaces
    the target: at every moment the target path is one complete database."""
    path = os.path.abspath(target.name)
    existed = os.path.exists(path)
    try:
        if existed:
            if os.path.lexists(kept.name):
                raise SwapRefused(
                    f"{kept.name!r} already exists where the previous {path!r} would be kept; "
                    "the target was not changed"
                )
            os.link(path, kept.name)
            _move_side_files(path, kept.name)
        try:
            os.replace(scratch.name, path)
        except OSError:
            if existed:
                _move_side_files(kept.name, path)
                os.unlink(kept.name)
            raise
        _fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise RestoreFailed(f"could not replace the SQLite database {path!r}: {exc}") from exc
    return kept if existed else None


def _put_back_sqlite(target: ConnectionSpec, kept: ConnectionSpec) -> bool:
    path = os.path.abspath(target.name)
    if not os.path.lexists(kept.name):
        return False
    try:
        if os.path.lexists(path) and os.path.samefile(path, kept.name):
            # Stopped between the link and the replace: the target is still the previous one.
            _move_side_files(kept.name, path)
            os.unlink(kept.name)
        else:
            for suffix in SIDE_FILES:  # the restored database's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
            os.replace(kept.name, path)
            _move_side_files(kept.name, path)
        _fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise RestoreFailed(
            f"could not put the SQLite database {path!r} back ({exc}); its previous file is "
            f"kept as {kept.name!r}"
        ) from exc
    return True


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_paths(first: str, second: str) -> bool:
    """Atomically exchange two paths (Linux renameat2); False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if (
        renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), first)


def _exchange_or_rename(incoming: str, path: str, outgoing: str) -> None:
    """Put ``incoming`` at ``path`` and what was there at ``outgoing``: one atomic exchange
    where the system has it, else two renames (undone if the second fails)."""
    if exchange_paths(incoming, path):
        try:
            os.rename(incoming, outgoing)  # the exchange left the old tree at incoming's name
        except OSError:
            exchange_paths(incoming, path)  # as it was: the caller sees nothing swapped
            raise
        return
    os.rename(path, outgoing)
    try:
        os.rename(incoming, path)
    except OSError:
        os.rename(outgoing, path)
        raise


def _swap_files(
    target: ConnectionSpec, scratch: ConnectionSpec, kept: ConnectionSpec, tag: str
) -> ConnectionSpec | None:
    path = os.path.abspath(target.name.rstrip("/"))
    try:
        if not os.path.exists(path):
            os.rename(scratch.name, path)
            _fsync_dir(os.path.dirname(path))
            return None
        if os.path.lexists(kept.name):
            raise SwapRefused(
                f"{kept.name!r} already exists where the previous {path!r} would be kept; "
                "the target was not changed"
            )
        # After the exchange and before the rename, the previous tree sits under the
        # scratch's name: the note lets put_back (the reaper's) tell it from the scratch.
        note = _swap_note(target, tag)
        with open(note, "w") as handle:
            handle.write(_identity(path))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            _exchange_or_rename(scratch.name, path, kept.name)
        finally:
            os.unlink(note)  # swapped, or as it was: either way no longer in between
        _fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise RestoreFailed(f"could not swap in the restored directory {path!r}: {exc}") from exc
    return kept


def _swap_note(target: ConnectionSpec, tag: str) -> str:
    return scratch_spec(target, tag, purpose="swapping").name


def _identity(path: str) -> str:
    info = os.stat(path)
    return f"{info.st_dev}:{info.st_ino}"


def _put_back_files(
    target: ConnectionSpec, kept: ConnectionSpec, discard_as: ConnectionSpec, tag: str
) -> bool:
    path = os.path.abspath(target.name.rstrip("/"))
    note = _swap_note(target, tag)
    try:
        if os.path.exists(note):
            with open(note) as handle:
                previous = handle.read()
            if os.path.isdir(discard_as.name) and _identity(discard_as.name) == previous:
                os.rename(discard_as.name, kept.name)  # stopped between exchange and rename
            os.unlink(note)
    except OSError as exc:
        raise RestoreFailed(f"could not read the swap note {note!r}: {exc}") from exc
    if not os.path.lexists(kept.name):
        return False
    try:
        if os.path.exists(path):
            _exchange_or_rename(kept.name, path, discard_as.name)
            shutil.rmtree(discard_as.name, ignore_errors=True)
        else:
            os.rename(kept.name, path)
        _fsync_dir(os.path.dirname(path))
    except OSError as exc:
        raise RestoreFailed(
            f"could not put the directory {path!r} back ({exc}); its previous tree is kept "
            f"as {kept.name!r}"
        ) from exc
    return True


# --- versions ------------------------------------------------------------------------------


def major_version(engine: str, version: str) -> tuple[int, ...] | None:
    """PostgreSQL's major version ("15.20" -> (15,), "9.6.24" -> (9, 6)); None if unknown."""
    digits = version.strip().split(" ")[0].split("-")[0].split(".")
    try:
        numbers = [int(part) for part in digits if part]
    except ValueError:
        return None
    if not numbers:
        return None
    if engine == "postgresql":
        return tuple(numbers[:2]) if numbers[0] < 10 else (numbers[0],)
    return tuple(numbers[:2])


def version_text(major: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in major)
