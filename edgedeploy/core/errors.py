"""User-facing errors and their exit codes (the table is in docs/untrusted-input.md).

A user error becomes one line on stderr and an exit code; a bug keeps its traceback.
"""


class EdgeDeployError(Exception):
    """An error the user can act on, with its exit code (0 ok, 1 gate or validation, 2 bad input, 3 environment, 4 invalid benchmark)."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the path, what went wrong and what to do (exit 3)."""
    import errno

    where = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    fixes = {
        errno.EACCES: "check its permissions or choose another directory",
        errno.EPERM: "it may be immutable or owned by someone else; choose another directory",
        errno.EROFS: "the file system is read-only; write somewhere else",
        errno.ENOSPC: "the disk is full; free space or write elsewhere",
        errno.EDQUOT: "the disk quota is exceeded; free space or write elsewhere",
        errno.EISDIR: "it is a directory; give a file path",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.ENOENT: "a directory on the path does not exist; create it first",
        errno.ENAMETOOLONG: "the name is too long; use a shorter path",
    }
    fix = fixes.get(exc.errno, "check the path and the disk")
    return f"{where}: {exc.strerror or type(exc).__name__}; {fix}"


class ValidationFailed(EdgeDeployError):
    """A gate, a budget or a numerical validation failed (exit 1)."""

    exit_code = 1


class BadInput(EdgeDeployError):
    """Missing or broken file, unsafe model, bad option or profile (exit 2)."""

    exit_code = 2


class EnvironmentFailure(EdgeDeployError):
    """Environment or transport failure: missing runtime, SSH, disk (exit 3)."""

    exit_code = 3


class InvalidBenchmark(EdgeDeployError):
    """A benchmark result is not valid where validity was required (exit 4)."""

    exit_code = 4


class Interrupted(EdgeDeployError):
    """SIGINT/SIGTERM arrived; whatever was being written has been removed."""

    exit_code = 130


def disk_error(exc: BaseException, path) -> OSError | None:
    """The OSError to raise (exit 3, naming ``path``) when ``exc`` is a full disk, an exceeded
    quota or a read-only file system, whatever library wrapped it (ONNX Runtime and onnx raise
    their own types with "[Errno 28]" in the text); ``None`` for anything else."""
    import errno
    import re

    disk = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
    if isinstance(exc, OSError) and exc.errno in disk:
        return OSError(exc.errno, exc.strerror or os_strerror(exc.errno), str(exc.filename or path))
    m = re.search(r"\[Errno (\d+)\]", str(exc))
    if m and int(m.group(1)) in disk:
        return OSError(int(m.group(1)), os_strerror(int(m.group(1))), str(path))
    if "No space left on device" in str(exc):
        return OSError(errno.ENOSPC, os_strerror(errno.ENOSPC), str(path))
    return None


def os_strerror(code: int) -> str:
    import os

    return os.strerror(code)
