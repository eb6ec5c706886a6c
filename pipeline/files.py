"""Writing files: atomic writes (temp file in the same folder, fsync, rename; nothing is half-written), file-safe
names (`slug`) and the timestamp stamped into what we write (`now_iso`)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temp path beside `path`; on success rename it over `path`, on error delete it.

    The temp name keeps the target's suffix so libraries that pick a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give users the permissions a plain open() would
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value, indent: int = 2) -> Path:
    import json

    return atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=True) + "\n")


def now_iso() -> str:
    """Current UTC time as ISO 8601 with whole seconds and a "Z" (e.g. 2026-11-29T05:40:00Z)."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def slug(name: str, default: str = "voice") -> str:
    """File-safe lowercase name: runs of anything but a-z/0-9 become "-"; `default` if nothing is left."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or default
