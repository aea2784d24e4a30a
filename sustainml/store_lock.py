"""One holder per store: an OS lock (``fcntl.flock``) on a file beside the store, held as long as the
process that took it lives. The kernel drops it when that process ends, however it ends (SIGKILL, a
crash, the OOM killer), so a dead holder never blocks the next one, and no stale-lock clean-up exists
to get wrong. The file also says who holds it (pid, host, what, since when), for the refusal's line.

Used for the orchestrator's task store and the hardware node's measurement cache (``SqliteFile``'s
``holder``), and for a launcher's store folder (``launch.py``, which keeps its nodes' pids in it).
Local file systems only: on NFS, ``flock`` is emulated with byte-range locks, which a server may keep
after a client dies."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["Holder", "StoreInUse", "StoreLock", "LOCK_SUFFIX"]

LOCK_SUFFIX = ".lock"   # the lock file of ``x.sqlite3`` is ``x.sqlite3.lock``
_READ_RETRY_S = 1.0     # how long to wait for a holder that has the lock but has not written its name yet


@dataclass
class Holder:
    """Who holds a lock, as written in its file; ``extra`` is the holder's own (a launcher's nodes)."""

    what: str                 # "orchestrator", "sustainml launch"
    pid: int
    host: str
    since_unix_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since_unix_s))
        return f"{self.what} (pid {self.pid} on host {self.host}, since {since})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lock file names, or None for an empty or unreadable one."""
        try:
            data = json.loads(text)
            return cls(str(data["what"]), int(data["pid"]), str(data["host"]), float(data["since_unix_s"]),
                       dict(data.get("extra") or {}))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


class StoreInUse(ConfigError):
    """Raised when a store (or a launcher's store folder) is held by another live process; the message
    names the holder and the file, and says what to do."""

    def __init__(self, what: str, path: Path, holder: Holder | None, hint: str) -> None:
        who = holder.describe() if holder else "another process (it has not written its name yet)"
        super().__init__(f"{what} {path} is in use by {who}; {hint}")
        self.path = path
        self.holder = holder


class StoreLock:
    """The lock of the store at ``store``: ``acquire()`` takes it or raises StoreInUse; ``release()`` (or
    the end of the process) gives it back. The lock file is ``lock_file``, by default the store's path
    with ``.lock`` appended; it is created, never deleted (deleting a lock file races with a process
    that just opened it)."""

    def __init__(self, store: str | Path, *, holder: str, what: str, hint: str,
                 lock_file: str | Path | None = None) -> None:
        self.store = Path(store)
        self.path = Path(lock_file) if lock_file else self.store.with_name(self.store.name + LOCK_SUFFIX)
        self.holder = Holder(holder, os.getpid(), socket.gethostname(), 0.0)
        self.what = what          # "task store": what the refusal names, before the store's path
        self.hint = hint          # what the refused process's user should do
        self._fd: int | None = None
        self.previous: Holder | None = None   # what the file said when we took it (a dead holder's record)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StoreLock:
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise ConfigError(f"cannot open the lock file {self.path} of {self.what} {self.store}: {e.strerror}; "
                              "give a folder this user may write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(self.what, self.store, self._read_holder(), self.hint) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.previous = Holder.parse(self._read(fd))
        self.holder.since_unix_s = time.time()
        self.write()
        return self

    def write(self, **extra: Any) -> None:
        """Rewrite the file with this holder and ``extra`` (replacing the previous extra)."""
        if self._fd is None:
            return
        self.holder.extra = extra
        data = json.dumps(asdict(self.holder)).encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        """Give the lock back; a second call does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)   # closing the last descriptor of the open file drops the flock

    def _read_holder(self) -> Holder | None:
        """Who holds the lock: read again for a moment if the holder took it but has not written yet."""
        deadline = time.monotonic() + _READ_RETRY_S
        while True:
            try:
                holder = Holder.parse(self.path.read_text())
            except OSError:
                holder = None
            if holder is not None or time.monotonic() > deadline:
                return holder
            time.sleep(0.05)

    @staticmethod
    def _read(fd: int) -> str:
        chunks = []
        offset = 0
        while chunk := os.pread(fd, 65536, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks).decode(errors="replace")
