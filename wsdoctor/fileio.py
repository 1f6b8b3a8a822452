"""Atomic file output: a report is either the old file or the whole new one, never half of each.

And bounded file input: :func:`read_capped` reads at most a fixed number of bytes, so a file that
is far too large is refused before its contents cost any memory."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from wsdoctor.errors import UsageError

__all__ = ["atomic_write_text", "check_writable", "format_size", "read_capped"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early (before any probe runs) if a report cannot be written to ``path``."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"cannot write report to {str(target)!r}: it is a directory")
    if not parent.is_dir():
        raise UsageError(f"cannot write report to {str(target)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write report to {str(target)!r}: directory {str(parent)!r} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"cannot write report to {str(target)!r}: file is not writable")
    return target


def format_size(n: int) -> str:
    """``n`` bytes for a one-line message: ``812 bytes``, ``3.2 MB``, ``50 MB``."""
    if n < 1024 * 1024:
        return f"{n} bytes" if n < 10 * 1024 else f"{n / 1024:.0f} KB"
    mb = n / (1024 * 1024)
    return f"{mb:.0f} MB" if mb == int(mb) or mb >= 100 else f"{mb:.1f} MB"


def read_capped(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path``, or :class:`UsageError` (one line, naming the bound) when it holds more
    than ``max_bytes``. A regular file is judged by its size before anything is read; a pipe or
    device is read up to ``max_bytes + 1`` bytes and no further, so memory stays bounded either way."""
    shown = str(path)
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
                raise UsageError(
                    f"{shown!r} is too large for a {what}: {format_size(st.st_size)}, "
                    f"over the limit of {format_size(max_bytes)}"
                )
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {shown!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UsageError(f"{shown!r} is too large for a {what}: over the limit of {format_size(max_bytes)}")
    return data


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a temp file in the same directory, fsync it, then rename over ``path``.

    An existing path that is not a regular file (``/dev/stdout``, ``/dev/null``, a FIFO) is written
    in place: renaming over it would replace a device node with a file -- as root, /dev/null."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists() and not target.is_file():
        try:
            with open(target, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write report to {str(target)!r}: {exc.strerror}") from None
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write report to {str(target)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
