"""Writing files: atomic writes (temp file in the same folder, fsync, rename; nothing is half-written), file-safe
names (`slug`) and the timestamp stamped into what we write (`now_iso`).

Temp files are named `.rt-tmp.<host>.<pid>.<name[:40]>.<random><suffix>` so that `sweep_temps` can tell our own
leftovers (from a run that was killed) from anything else, and never touches a temp file a live process is writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

TEMP_PREFIX = ".rt-tmp."
_TEMP_NAME = re.compile(r"^\.rt-tmp\.(?P<host>[A-Za-z0-9-]{1,16})\.(?P<pid>\d{1,10})\.")
STALE_FOREIGN_SECONDS = 6 * 3600  # a temp file from another machine is swept only when this old


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:16] or "host"


class WriteError(OSError):
    """Writing a file failed (disk full, no permission, …); the message names the path and what is needed."""


def write_error(path: str | os.PathLike, error: BaseException, needed_bytes: int | None = None) -> WriteError:
    """One clear line for a failed write of `path`: the cause, free space left and (when known) space needed."""
    path = Path(path)
    folder = path.parent
    code = getattr(error, "errno", None)
    text = str(error)
    try:
        free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    except OSError:
        free = None
    need = f"; about {human_bytes(needed_bytes)} needed" if needed_bytes else ""
    left = f" ({human_bytes(free)} free{need})" if free is not None else ""
    low_space = free is not None and free < max(needed_bytes or 0, 1024 * 1024)
    opaque = _is_libsndfile_error(error)  # libsndfile says only "System error." for a full disk
    if opaque:
        code = None
        text = " ".join(text.split())
    if (code in (errno.ENOSPC, errno.EDQUOT) or "no space" in text.lower() or "disk full" in text.lower()
            or (opaque and low_space)):
        msg = f"cannot write {path}: disk full{left}. Free space in {folder} and run the same command again."
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS) or "permission" in text.lower():
        msg = f"cannot write {path}: permission denied. Make {folder} writable and run the same command again."
    else:
        msg = f"cannot write {path}: {text or type(error).__name__}{left}."
    return WriteError(code or errno.EIO, msg)


def human_bytes(n: float) -> str:
    """A size as people read it: 512 B, 3.4 MB, 1.2 GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, needed_bytes: int | None = None):
    """Yield a temp path beside `path`; on success rename it over `path`, on error delete it.

    The temp name keeps the target's suffix so libraries that pick a format by extension still work. A failure
    while writing is re-raised as a WriteError naming `path` (never the temp path) with the free space left.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{TEMP_PREFIX}{_host()}.{os.getpid()}.{path.name[:40]}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give users the permissions a plain open() would
    try:
        try:
            yield Path(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except WriteError:
            raise
        except OSError as e:
            raise write_error(path, e, needed_bytes) from None
        except Exception as e:
            if _is_libsndfile_error(e):  # soundfile's errors are not OSErrors ("System error." on a full disk)
                raise write_error(path, e, needed_bytes) from None
            raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _is_libsndfile_error(e: BaseException) -> bool:
    return type(e).__name__ in ("LibsndfileError", "SoundFileRuntimeError") or (
        isinstance(e, RuntimeError) and type(e).__module__.startswith("soundfile"))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for one of our temp files whose writer is gone (this machine: its pid is dead; another machine: old)."""
    m = _TEMP_NAME.match(path.name)
    if not m:
        return False
    if m["host"] == _host():
        return not _pid_alive(int(m["pid"]))
    try:
        return (now or time.time()) - path.stat().st_mtime > STALE_FOREIGN_SECONDS
    except OSError:
        return False


def sweep_temps(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete our own stale temp files (see `is_stale_temp`) under `root`; returns what was removed."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    candidates = root.rglob(f"{TEMP_PREFIX}*") if recursive else root.glob(f"{TEMP_PREFIX}*")
    for p in candidates:
        if p.is_file() and not p.is_symlink() and is_stale_temp(p):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


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


SLUG_MAX = 48  # file names derived from character names, titles and headings stay well under NAME_MAX


def slug(name: str, default: str = "voice") -> str:
    """File-safe lowercase name: runs of anything but a-z/0-9 become "-"; `default` if nothing is left. A name whose
    slug is longer than SLUG_MAX is cut and given 8 hex digits of its sha256, so long names stay distinct."""
    import hashlib

    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or default
    if len(s) <= SLUG_MAX:
        return s
    return f"{s[:SLUG_MAX - 9].rstrip('-')}-{hashlib.sha256(name.encode('utf-8', 'replace')).hexdigest()[:8]}"


class FolderBusyError(OSError):
    """Another process holds the lock of a folder we want to write."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "render", wait_s: float = 0.0, name: str = "readthrough"):
    """Hold an exclusive lock on `folder` (a `.<name>.lock` file inside it) for the duration of the block.

    Another holder — in this process or any other on the machine, or a machine sharing the folder where the file
    system supports `flock` — makes this wait up to `wait_s` seconds, then raise FolderBusyError naming the folder
    and the holder's pid. The lock dies with its process: a killed render never leaves the folder locked."""
    import fcntl
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.lock"
    f = open(path, "a+", encoding="utf-8")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    try:
                        holder = json.loads(f.read() or "{}")
                    except ValueError:
                        holder = {}
                    who = f" (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')})" \
                        if holder.get("pid") else ""
                    raise FolderBusyError(errno.EBUSY, f"Another {what} is writing to {folder}{who}. Wait for it to "
                                          "finish, or use another output folder (-o).") from None
                time.sleep(0.2)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        f.flush()
        yield path
    finally:
        f.close()  # closing the file releases the lock


def file_stat(path) -> list[int] | None:
    """[size, mtime_ns] of a file we wrote: a cached result is trusted only while its file is unchanged."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


# ---------------------------------------------------------------- large sequential writes


STREAM_CHUNK = 8 << 20  # bytes per write of a StreamWriter (a multiple of any device's block size)


class StreamWriter:
    """Write one large file front to back without filling the page cache.

    Why: a master of a few hundred MB written through the page cache needs as many fresh memory pages, and where
    memory is handed back to a hypervisor while free (free page reporting, balloons: most cloud VMs) each fresh page
    costs a host fault — measured 3–5 s per 400 MB here, 0.2 s when the pages happen to be warm. Whole chunks go
    to disk with O_DIRECT from one reused page-aligned buffer (Linux; elsewhere, or where the file system refuses
    O_DIRECT, plain writes); the tail is a plain write. Durability is the caller's fsync (pipeline.files.atomic_path).
    """

    def __init__(self, path: str | os.PathLike, chunk: int = STREAM_CHUNK):
        import mmap

        self.path, self.chunk = Path(path), chunk
        self._buf = mmap.mmap(-1, chunk)  # anonymous mappings are page-aligned, as O_DIRECT needs
        self._view = memoryview(self._buf)
        self._fill = 0  # bytes of the buffer not written yet
        self._offset = 0  # file offset of the buffer's first byte
        self._fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o666)
        self._direct = _open_direct(self.path)

    def write(self, data) -> None:
        data = memoryview(data).cast("B")
        while len(data):
            n = min(len(data), self.chunk - self._fill)
            self._view[self._fill : self._fill + n] = data[:n]
            self._fill += n
            data = data[n:]
            if self._fill == self.chunk:
                self._flush()

    def copy_from(self, f, size: int, name: str | os.PathLike = "") -> None:
        """Append `size` bytes read from the binary file `f` at its position, read straight into the buffer."""
        left = size
        while left:
            n = f.readinto(self._view[self._fill : self._fill + min(left, self.chunk - self._fill)])
            if not n:
                raise EOFError(f"{name or f} ended {left} bytes before the {size} expected")
            self._fill += n
            left -= n
            if self._fill == self.chunk:
                self._flush()

    def _flush(self) -> None:
        part = self._view[: self._fill]
        if self._direct is not None and self._fill == self.chunk:
            try:
                _write_all(self._direct, part, self._offset)
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: this file system takes no O_DIRECT writes after all
                    raise
                os.close(self._direct)
                self._direct = None
        if self._direct is None or self._fill != self.chunk:
            _write_all(self._fd, part, self._offset)
        self._offset += self._fill
        self._fill = 0

    def close(self) -> None:
        """Write what is buffered, close."""
        try:
            if self._fill:
                self._flush()
        finally:
            for fd in (self._direct, self._fd):
                if fd is not None:
                    os.close(fd)
            self._direct = None
            self._view.release()
            self._buf.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._fill = 0
            self.close()


def _open_direct(path: Path) -> int | None:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:  # tmpfs and some others refuse O_DIRECT: plain writes
        return None


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n
