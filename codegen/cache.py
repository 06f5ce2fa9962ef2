"""On-disk cache of compiled object code, safe across concurrent processes.

Entry file = header + payload. Header: 8-byte magic, 8-byte little-endian payload length and the
32-byte SHA-256 of the payload. A short, truncated or corrupted file fails the check and is
treated as a miss (the caller recompiles and overwrites it). Writes go to a unique temporary file
in the same directory followed by ``os.replace``, which is atomic on POSIX: readers see the old
entry or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

_MAGIC = b"SYMADOB1"
_HEADER = struct.Struct("<8sQ32s")


def default_cache_dir() -> Path:
    """``$SYMAD_CACHE_DIR`` if set, else ``~/.cache/symad``."""
    env = os.environ.get("SYMAD_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "symad"


def cache_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        data = p.encode()
        h.update(struct.pack("<Q", len(data)))  # length-prefixed: no ambiguity between parts
        h.update(data)
    return h.hexdigest()


class DiskCache:
    """A directory of object files keyed by :func:`cache_key`.

    >>> import tempfile
    >>> c = DiskCache(tempfile.mkdtemp())
    >>> c.store("k" * 64, b"payload")
    True
    >>> c.load("k" * 64)
    b'payload'
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.o"

    def load(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None if absent, truncated or corrupted."""
        try:
            blob = self.path(key).read_bytes()
        except OSError:
            return None
        if len(blob) < _HEADER.size:
            return None
        magic, length, digest = _HEADER.unpack_from(blob)
        payload = blob[_HEADER.size:]
        if magic != _MAGIC or length != len(payload) or hashlib.sha256(payload).digest() != digest:
            return None
        return payload

    def store(self, key: str, payload: bytes) -> bool:
        """Atomically write an entry; returns False (and leaves no temp file) on I/O errors."""
        target = self.path(key)
        header = _HEADER.pack(_MAGIC, len(payload), hashlib.sha256(payload).digest())
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".o")
            with os.fdopen(fd, "wb") as f:
                f.write(header + payload)
            os.replace(tmp, target)
            return True
        except OSError:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            return False
