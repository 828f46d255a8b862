"""Atomic file writes (every file probrep writes goes through :func:`atomic_open`) and bounded archive reads.

The content goes to a temporary file in the target folder, is flushed to disk, and is renamed over the final
name only when writing finished; on any error the temporary file is removed, so a crash never leaves a
truncated file under the real name. The finished file gets the mode any other tool would give it
(``0o666`` less the umask), not the owner-only ``0o600`` of the temporary file.

:func:`read_zip_member` inflates one member of a zip archive with a bound on its size, so that a small archive
that inflates to gigabytes (a zip bomb) is refused instead of read whole.
"""

from __future__ import annotations

import lzma
import os
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux's ``/proc/self/status``).

    Elsewhere it is read the only portable way, setting and restoring it, under a lock so that probrep's own
    threads never see the momentary value; that value is 0o077, so a file another thread creates in that instant
    comes out more private than asked, never less."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` when the block succeeds."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file 0o600; the user's outputs should be as readable as any other tool's
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_zip_member(path: str | os.PathLike, suffix: str, limit: int) -> bytes:
    """The one member of the zip archive ``path`` whose name ends with ``suffix``, inflated. ``ValueError``
    naming the file when there is not exactly one, when it is damaged, or when the member declares or inflates
    to more than ``limit`` bytes (declared sizes can lie, so the read itself is bounded too)."""
    with open(path, "rb") as handle:  # a file that cannot be opened stays an OSError
        try:
            with zipfile.ZipFile(handle) as archive:
                members = [m for m in archive.infolist() if m.filename.endswith(suffix)]
                if len(members) != 1:
                    raise ValueError(
                        f"{path}: expected one {suffix} file inside, found {[m.filename for m in members]}"
                    )
                if members[0].file_size > limit:
                    raise ValueError(
                        f"{path}: {members[0].filename} inflates to {members[0].file_size} bytes, more than the "
                        f"{limit} allowed"
                    )
                with archive.open(members[0]) as member:
                    raw = member.read(limit + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError,
                NotImplementedError, OSError) as exc:  # fmt: skip
            # RuntimeError: an encrypted member; NotImplementedError: a compression method zipfile lacks; OSError:
            # a damaged bz2 stream, or a header that points before the start of the file
            raise ValueError(f"cannot read zip archive {path}: {type(exc).__name__}: {exc}") from exc
    if len(raw) > limit:
        raise ValueError(f"{path}: {members[0].filename} inflates to more than the {limit} bytes allowed")
    return raw
