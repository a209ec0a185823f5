"""One run per output folder: an exclusive, non-blocking lock on ``<out>/.lock``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RunLock:
    """Hold ``<out>/.lock`` for the duration of a ``with`` block; a second run into the same folder stops
    at once with a message naming the process that holds it (the lock dies with its process)."""

    def __init__(self, out: str | Path):
        self.path = Path(out) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SystemExit(
                f"{self.path.parent} is in use by a running benchmark (pid {holder}); wait for it or "
                "choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
