"""Atomic writes: files via temp+fsync+os.replace, directories via a staging dir
published by one rename, and signal deferral so Ctrl-C never leaves half an artifact.

SIGINT/SIGTERM raised inside torch's C++ exporter while it calls back into Python can
abort the interpreter, so the first signal only sets a flag that is checked at safe
points (``checkpoint()``); a second signal interrupts at once.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import signal
import stat
import tempfile
import threading
from pathlib import Path

from edgedeploy.core.errors import BadInput, Interrupted, disk_error

STAGING_PREFIX = ".edgedeploy-staging-"
SCRATCH_PREFIX = ".edgedeploy-quant-"


def umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def check_output_file(path: Path, flag: str | None = None) -> None:
    """An output file path may be new or an existing regular file, nothing else: renaming over a
    device node (``/dev/null``), a FIFO, a socket, a directory or a symbolic link would replace
    something that is not ours (exit 2, naming it). Call it before the work, too."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # a part of the path is a file: the write itself reports it (exit 3, naming it)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return
    kind = (
        "a symbolic link"
        if stat.S_ISLNK(mode)
        else "a directory"
        if stat.S_ISDIR(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise BadInput(f"{name}: is {kind}; edgedeploy only writes new files or replaces regular files, give another path")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and a rename, with the mode a plain ``open``
    would give (0666 less the umask; mkstemp alone makes 0600). The one helper behind every
    output file: an existing target that is not a regular file is refused (``check_output_file``);
    a failed write (disk full, quota, read-only) leaves nothing behind and raises an OSError
    naming ``path``."""
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o666 & ~umask())
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        check_output_file(path)  # it may have appeared while we wrote
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj) -> None:
    """Strict JSON: a NaN or infinity is written as null (bare NaN is not JSON)."""
    write_bytes_atomic(path, (json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _SignalGuard:
    def __init__(self):
        self.pending: int | None = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.pending is not None:  # second signal: stop now
            raise Interrupted(f"interrupted by signal {signum}")
        self.pending = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def check(self):
        if self.pending is not None:
            raise Interrupted(f"interrupted by signal {self.pending}; nothing was published")


_active_guard: _SignalGuard | None = None


def checkpoint() -> None:
    """Raise Interrupted here if a signal arrived since the last checkpoint."""
    if _active_guard is not None:
        _active_guard.check()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(parent: Path, name: str, prefix: str = STAGING_PREFIX) -> None:
    """Remove what a killed run left next to ``name``: entries ``<prefix><name>-<pid>-*`` whose pid is gone."""
    for entry in parent.glob(f"{glob.escape(prefix + name)}-*"):
        try:
            pid = int(entry.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _fresh_dir(out: Path, prefix: str) -> Path:
    """A new ``<prefix><out name>-<pid>-*`` dir beside ``out``, after removing those of dead runs."""
    _remove_stale_staging(out.parent, out.name, prefix)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{prefix}{out.name}-{os.getpid()}-"))


def check_output_dir(out: Path, force: bool, is_artifact) -> None:
    """Refuse to overwrite without --force, and never replace a non-artifact folder."""
    if out.is_symlink():
        raise BadInput(f"{out}: is a symbolic link; refusing to replace it even with --force (give the real path)")
    if out.exists():
        if not force:
            raise BadInput(f"{out}: already exists; pass --force to replace it")
        if not out.is_dir() or not is_artifact(out):
            raise BadInput(f"{out}: exists and is not an edgedeploy artifact; refusing to replace it even with --force")


@contextlib.contextmanager
def staged_directory(out: Path, force: bool = False, is_artifact=lambda p: False):
    """Yield a staging dir next to ``out``; on clean exit publish it with one rename.

    On any exception (including a deferred Ctrl-C) the staging dir is removed and
    ``out`` is untouched.
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output_dir(out, force, is_artifact)
    stage = _fresh_dir(out, STAGING_PREFIX)
    os.chmod(stage, 0o777 & ~umask())  # published as is: a directory mode, not mkdtemp's 0700
    try:
        with signals_deferred() as guard:
            try:
                yield stage
            except Exception as exc:
                disk = disk_error(exc, out)
                if disk is not None and not (isinstance(exc, OSError) and exc.filename):
                    raise disk from exc  # a full disk names the output, whichever library hit it
                raise
            guard.check()
            _publish(stage, out, force, is_artifact)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@contextlib.contextmanager
def scratch_directory(out: Path):
    """A work dir next to ``out`` (same file system, so large intermediates never fill /tmp),
    removed on exit; ones left by killed runs are removed on the next run."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = _fresh_dir(out, SCRATCH_PREFIX)
    try:
        yield work
    except Exception as exc:
        disk = disk_error(exc, out)
        if disk is not None and (not disk.filename or str(work) in str(disk.filename)):
            raise OSError(disk.errno, disk.strerror, str(out)) from exc  # name the output, not our scratch
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def refuse_inside(out: Path, source: Path, what: str = "the input") -> None:
    """``-o`` may not be ``source`` or lie inside it: replacing or writing into the input loses it."""
    out, source = Path(out).absolute().resolve(), Path(source).absolute().resolve()
    if out == source or source in out.parents:
        raise BadInput(f"{out}: is {what} or inside it ({source}); write the result somewhere else")


def refuse_same(out: Path, source: Path, what: str) -> None:
    """``-o`` may not be ``source`` itself (publishing would replace it)."""
    if Path(out).absolute().resolve() == Path(source).absolute().resolve():
        raise BadInput(f"{out}: is {what}; write the result somewhere else")


@contextlib.contextmanager
def signals_deferred():
    """Within this block the first Ctrl-C/SIGTERM only raises at the next ``checkpoint()``."""
    global _active_guard
    guard = _SignalGuard()
    previous, _active_guard = _active_guard, guard
    try:
        with guard:
            yield guard
    finally:
        _active_guard = previous


def _publish(stage: Path, out: Path, force: bool, is_artifact) -> None:
    for f in stage.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(stage)
    if out.exists():
        check_output_dir(out, force, is_artifact)
        trash = out.parent / f"{STAGING_PREFIX}{out.name}-{os.getpid()}-old"
        os.rename(out, trash)
        try:
            os.rename(stage, out)
        except BaseException:
            os.rename(trash, out)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(stage, out)
    _fsync_dir(out.parent)


@contextlib.contextmanager
def scratch_cwd():
    """Run a step with a throw-away working directory. ORT's symbolic shape inference
    writes ``sym_shape_infer_temp.onnx`` and a ``<uuid>.data`` copy of every weight into the
    current directory and leaves them there when it fails; this keeps them out of the
    user's checkout. Pass absolute paths into the step."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="edgedeploy-scratch-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(previous)
