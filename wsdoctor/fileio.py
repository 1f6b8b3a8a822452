"""Atomic file output: a report is either the old file or the whole new one, never half of each."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from wsdoctor.errors import UsageError

__all__ = ["atomic_write_text", "check_writable"]


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
