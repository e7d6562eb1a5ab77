"""User-facing errors and the exit codes from DESIGN.md.

A user error becomes one line on stderr and an exit code; a bug keeps its traceback.
"""


class EdgeDeployError(Exception):
    """An error the user can act on. ``exit_code`` follows DESIGN.md."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


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
