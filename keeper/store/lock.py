"""One process per store: an exclusive `flock` on `<db>.lock`, held for the process's life.

Two nodes on one store (run by mistake, or a supervisor restarting a node that has not died
yet) share its nonces and its equivocation record and collide on both. The lock is advisory
and per open file, so the kernel drops it when the process exits, however it exits: a crash
never leaves a stale lock behind. The file holds the holder's pid, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from keeper.errors import StoreError, StoreInUse

IN_MEMORY = ":memory:"


def lock_path(db: str | Path) -> str:
    return f"{db}.lock"


class StoreLock:
    """The held lock of one store; `release` it (or exit) to let another process open it."""

    def __init__(self, db: str, fd: int | None) -> None:
        self.db = db
        self._fd = fd

    @classmethod
    def acquire(cls, db: str | Path) -> StoreLock:
        """Takes the lock without waiting; StoreInUse names the holder's pid if it is taken."""
        if str(db) == IN_MEMORY:
            return cls(str(db), None)  # a private database: nobody else can open it
        path = lock_path(db)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot lock store {db}: {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreInUse(
                f"store {db} is in use by another keeper process (pid {holder}); "
                "run one keeper per --db"
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock store {db}: {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(str(db), fd)

    def release(self) -> None:
        """Unlocks; the file stays (removing it would let two processes lock two inodes)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> str:
    """The pid the holder wrote, or "unknown" (it may not have written it yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
