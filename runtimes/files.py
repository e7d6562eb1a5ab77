"""The device side's one way to write a file (results JSON, saved outputs): a temp file in the
same folder, fsync, rename. An existing target that is not a regular file (a device, FIFO,
socket or link) is refused; a failed write (disk full) leaves nothing behind and raises an
OSError naming the target. Standard library only."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import JobError


def write_atomic(path: Path, write) -> None:
    """Publish what ``write(fh)`` writes to a binary file object as ``path``."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise JobError(f"{path}: exists and is not a regular file; refusing to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            mask = os.umask(0)
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)  # the mode a plain open() gives, not mkstemp's 0600
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
