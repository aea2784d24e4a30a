"""An SQLite file that threads and processes share safely, with versioned schema migrations: the base
of the orchestrator's task store and the hardware node's measurement cache (stdlib sqlite3; nothing
on PyPI adds what these two need). A node that must be the file's only user (one orchestrator per
task store) opens it with ``holder``: a second such process is refused with one line naming the first
(``store_lock.py``)."""

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from .exceptions import ConfigError
from .store_lock import StoreLock

__all__ = ["SqliteFile"]

_FileT = TypeVar("_FileT", bound="SqliteFile")

BUSY_TIMEOUT_MS = 5000  # how long to wait for another process's write lock on the same file


class SqliteFile:
    """One connection guarded by a lock (threads), WAL and a busy timeout (processes).

    Subclasses set ``migrations``: ``migrations[v]`` holds the statements that bring a file at
    ``PRAGMA user_version`` v to v + 1. ``path`` may be ``":memory:"`` for a file that lives as long
    as the object.

    ``holder`` (a node's name): hold the file's lock (``<path>.lock``) until ``close()`` or the end of
    the process, and refuse (StoreInUse, naming the live holder) if another holder has it. Without it,
    the file is opened as before, beside any holder (``sustainml measure`` beside the hardware node)."""

    migrations: ClassVar[Mapping[int, Sequence[str]]] = {}
    what: ClassVar[str] = "database"   # for error messages: "task store", "measurement cache"
    #: What a refused holder's user should do (the end of the refusal's line).
    holder_hint: ClassVar[str] = "stop that process first, or give this one another file"

    def __init__(self, path: str | Path, *, holder: str | None = None) -> None:
        self.path: str | Path = path if str(path) == ":memory:" else Path(path)
        self._holding: StoreLock | None = None
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if holder:
                self._holding = StoreLock(self.path, holder=holder, what=self.what, hint=self.holder_hint).acquire()
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; the ones we need are explicit.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
        except BaseException:
            self._release_holding()
            raise
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if isinstance(self.path, Path):
                self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except BaseException:
            self._db.close()
            self._release_holding()
            raise

    @property
    def schema_version(self) -> int:
        return len(self.migrations)

    def close(self) -> None:
        """Close the file (and give its lock back); a second call does nothing."""
        with self._lock:
            self._db.close()
        self._release_holding()

    def _release_holding(self) -> None:
        if self._holding is not None:
            self._holding.release()

    def __enter__(self: _FileT) -> _FileT:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The lock, and a write transaction that other processes on the same file wait for."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        """Bring the file to the current version, one step per transaction; the version is read inside
        the transaction so that two processes opening a new file at once do not both create it."""
        while True:
            with self._transaction() as db:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version > self.schema_version:
                    raise ConfigError(
                        f"{self.what} {self.path} has schema version {version}, newer than this program's "
                        f"{self.schema_version}; upgrade sustainml or point it at another file")
                if version == self.schema_version:
                    return
                for statement in self.migrations[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
