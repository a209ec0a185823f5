"""Atomic file writes: a reader sees the old file or the complete new one, never a partial write.

    from sista_kit.io import write_json_atomic
    write_json_atomic(out / "result.json", payload, indent=1)

The content goes to a uniquely named hidden file beside the target (same folder, so the same file
system), is flushed to disk, and is renamed over the target with ``os.replace``. Concurrent writers
never share a temporary file; the last rename wins.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = ["write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Serialise ``obj`` with ``json.dumps(obj, **dumps_kwargs)`` and write it to ``path`` atomically.

    The object is serialised before anything touches the disk, so an unserialisable value leaves
    the previous file in place.
    """
    return write_text_atomic(path, json.dumps(obj, **dumps_kwargs))
