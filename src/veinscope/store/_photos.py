"""Content-addressed photo files, written atomically.

Layout under ``<data dir>/photos``::

    ab/abcdef...<ext>        the original bytes; the name is their SHA-256
    .tmp/<host>.<pid>.<rand>.part     a file being written (renamed into place when complete)
    .pending/<sha>.<host>.<pid>       an import in flight: file written, database row not yet committed

A file appears under its final name only complete and fsynced (write to ``.tmp``, fsync,
rename, fsync the folder), so a crash leaves at worst a ``.part`` file or a complete file no
row refers to; :meth:`PhotoFiles.scan` tells those apart from an import still running.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PhotoFiles", "sha256_hex", "DiskFullError"]

_HOST = socket.gethostname().replace(".", "_") or "host"
_CHUNK = 1 << 20
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OSError):
    """The photo store ran out of space (or quota) while writing."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class _Marker:
    path: Path
    sha256: str
    host: str
    pid: int


class PhotoFiles:
    """The folder of original photos. Knows nothing about the database."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.tmp_dir = self.root / ".tmp"
        self.pending_dir = self.root / ".pending"

    def ensure(self) -> None:
        for d in (self.root.parent, self.root, self.tmp_dir, self.pending_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- naming ------------------------------------------------------------------------------
    @staticmethod
    def relpath(sha256: str, ext: str) -> str:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {sha256!r}")
        return f"{sha256[:2]}/{sha256}{ext}"

    def path(self, relpath: str) -> Path:
        p = (self.root / relpath).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"stored path escapes the photo folder: {relpath!r}")
        return p

    # -- writing -----------------------------------------------------------------------------
    def put(self, data: bytes, sha256: str, ext: str) -> str:
        """Store ``data`` under its hash (once); returns the path relative to the photo folder."""
        rel = self.relpath(sha256, ext)
        final = self.root / rel
        if final.is_file() and final.stat().st_size == len(data):
            return rel  # already stored: content addressing makes it the same bytes
        self.ensure()
        final.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = self.tmp_dir / f"{_HOST}.{os.getpid()}.{os.urandom(6).hex()}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view[:_CHUNK])
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # an erasure removed the empty shard folder meanwhile
                final.parent.mkdir(mode=0o700, exist_ok=True)
                os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _FULL_ERRNOS:
                raise DiskFullError(exc.errno, "no space left for the photo store") from exc
            raise
        return rel

    def delete(self, relpath: str) -> bool:
        p = self.path(relpath)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(p.parent)
        try:
            p.parent.rmdir()  # only succeeds when the shard folder is now empty
        except OSError:
            pass
        return True

    # -- in-flight markers -------------------------------------------------------------------
    def mark_pending(self, sha256: str) -> Path:
        self.ensure()
        marker = self.pending_dir / f"{sha256}.{_HOST}.{os.getpid()}"
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        return marker

    @staticmethod
    def unmark(marker: Path | None) -> None:
        if marker is not None:
            marker.unlink(missing_ok=True)

    def _markers(self) -> list[_Marker]:
        out = []
        if not self.pending_dir.is_dir():
            return out
        for p in self.pending_dir.iterdir():
            parts = p.name.split(".")
            try:
                out.append(_Marker(p, parts[0], ".".join(parts[1:-1]), int(parts[-1])))
            except (IndexError, ValueError):
                out.append(_Marker(p, "", "", -1))
        return out

    def _is_live(self, host: str, pid: int, mtime: float, grace_s: float) -> bool:
        if host == _HOST:
            return pid > 0 and _pid_alive(pid)
        return time.time() - mtime < grace_s  # another machine: trust it for a while

    # -- scanning ----------------------------------------------------------------------------
    def stored_files(self) -> dict[str, Path]:
        """Every complete file, keyed by its path relative to the photo folder."""
        out: dict[str, Path] = {}
        if not self.root.is_dir():
            return out
        for sub in self.root.iterdir():
            if not sub.is_dir() or sub.name.startswith("."):
                continue
            for f in sub.iterdir():
                if f.is_file():
                    out[f"{sub.name}/{f.name}"] = f
        return out

    def in_flight(self, *, grace_s: float) -> set[str]:
        """Hashes whose import is still running (its process is alive)."""
        live = set()
        for m in self._markers():
            try:
                mtime = m.path.stat().st_mtime
            except FileNotFoundError:
                continue
            if m.sha256 and self._is_live(m.host, m.pid, mtime, grace_s):
                live.add(m.sha256)
        return live

    def stale_temporaries(self, *, grace_s: float) -> list[Path]:
        """Half-written files and markers left by processes that died."""
        out = []
        if self.tmp_dir.is_dir():
            for p in self.tmp_dir.iterdir():
                parts = p.name.split(".")
                try:
                    host, pid = ".".join(parts[:-3]), int(parts[-3])
                    mtime = p.stat().st_mtime
                except (IndexError, ValueError, FileNotFoundError):
                    out.append(p)
                    continue
                if not self._is_live(host, pid, mtime, grace_s):
                    out.append(p)
        for m in self._markers():
            try:
                mtime = m.path.stat().st_mtime
            except FileNotFoundError:
                continue
            if not m.sha256 or not self._is_live(m.host, m.pid, mtime, grace_s):
                out.append(m.path)
        return out

    def file_sha256(self, relpath: str) -> str:
        h = hashlib.sha256()
        with open(self.path(relpath), "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                h.update(block)
        return h.hexdigest()
