"""The ``edgedeploy`` command group: one module per command (``cli/<name>_cmd.py``), imported when it runs."""

from __future__ import annotations

import logging
import os
import sys

import click

from edgedeploy import __version__
from edgedeploy.cli.common import fail_line
from edgedeploy.core.errors import EdgeDeployError, describe_os_error
from edgedeploy.runtimes.errors import JobError, ModelError, ProviderError, ShapeError

# Every command is one module, edgedeploy/cli/<name>_cmd.py, with a ``command``: it turns flags into
# the typed options, calls the library and renders the result. Helpers shared by commands are in
# cli/common.py; everything else lives in the library.
COMMANDS = {
    name: f"{name}_cmd"
    for name in (
        "export",
        "adopt",
        "inspect",
        "verify",
        "quantize",
        "bench",
        "profiles",
        "doctor",
        "estimate",
        "provision",
        "eval",
        "run",
        "report",
        "prune",
        "distill",
        "schema",
        "tune",
        "cleanup",
    )
}


EXPORT_EXTRA = "this command needs the export extra (PyTorch and the exporter): pip install 'edgedeploy[export]'"
INSTALL_HINTS = {
    "onnxruntime": "install one flavour: pip install 'edgedeploy[cpu]' (or [gpu]; on a Jetson, NVIDIA's onnxruntime-gpu wheel)",
    "torch": EXPORT_EXTRA,
    "onnxscript": EXPORT_EXTRA,
    "transformers": "pip install edgedeploy (transformers tokenizes text data; exporting needs the export extra: 'edgedeploy[export]')",
    "onnx": "pip install onnx",
}


class LazyGroup(click.Group):
    """Imports a command's module only when it runs, so ``--help`` stays fast."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        command = importlib.import_module(f"edgedeploy.cli.{COMMANDS[name]}").command
        if not any(p.name == "quiet" for p in command.params):  # -q/-v/--debug work after the subcommand too
            command.params += [
                click.Option(
                    ["-q", "--quiet"], is_flag=True, expose_value=False, callback=_verbosity(logging.WARNING), help="Only print results and errors."
                ),
                click.Option(
                    ["-v", "--verbose"], is_flag=True, expose_value=False, callback=_verbosity(logging.DEBUG), help="Also print debug messages."
                ),
                click.Option(["--debug"], is_flag=True, expose_value=False, help="Show tracebacks for errors."),
            ]
        return command


def _verbosity(level: int):
    def set_level(ctx, param, value):
        if value:
            logging.getLogger("edgedeploy").setLevel(level)

    return set_level


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgedeploy")
@click.option("--debug", is_flag=True, envvar="EDGEDEPLOY_DEBUG", help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print results and errors (before or after the command).")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug messages (before or after the command).")
@click.pass_context
def cli(ctx, debug, quiet, verbose):
    """Export, quantize and benchmark PyTorch models for edge devices with ONNX Runtime.

    Exit codes: 0 ok, 1 a gate or validation failed, 2 bad input, 3 environment or
    transport failure, 4 a benchmark result is not valid.
    """
    ctx.ensure_object(dict)["debug"] = debug
    logging.basicConfig(level=logging.ERROR, format="edgedeploy: %(message)s", stream=sys.stderr)
    logging.getLogger("edgedeploy").setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    for noisy in ("transformers", "optimum", "torch", "onnxscript", "onnx_ir", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv=None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get("EDGEDEPLOY_DEBUG")
    try:
        cli.main(args=argv, prog_name="edgedeploy", standalone_mode=False)
    except EdgeDeployError as exc:
        if debug:
            raise
        fail_line(str(exc))
        sys.exit(exc.exit_code)
    except (ShapeError, JobError, ModelError) as exc:  # device-side input errors surfacing on the host
        if debug:
            raise
        fail_line(str(exc))
        sys.exit(2)
    except ProviderError as exc:  # the environment lacks what was asked for
        if debug:
            raise
        fail_line(str(exc))
        sys.exit(3)
    except click.exceptions.Abort:
        fail_line("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        fail_line("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        fail_line(" ".join(exc.format_message().split()))  # click wraps some messages over lines
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:  # a dependency the environment lacks
        if debug:
            raise
        fix = INSTALL_HINTS.get((exc.name or "").split(".")[0])
        if exc.name == "optimum":  # transformers 4 exports with optimum-onnx (transformers 5 with its own exporter)
            fix = (
                "on transformers 4 the exporter is optimum-onnx: pip install 'edgedeploy[export-legacy]', or 'edgedeploy[export]' for transformers 5"
            )
        if fix is None:
            fail_line(f"internal error: ModuleNotFoundError: {_first_line(exc)}; rerun with --debug")
            sys.exit(1)
        fail_line(f"{exc.name} is not installed; {fix}")
        sys.exit(3)
    except OSError as exc:  # permission, read-only, no space, is-a-directory: the environment, not the input
        if debug:
            raise
        fail_line(describe_os_error(exc))
        sys.exit(3)
    except Exception as exc:  # a bug: one line, the traceback behind --debug
        if debug:
            raise
        fail_line(f"internal error: {type(exc).__name__}: {_first_line(exc)}; rerun with --debug")
        sys.exit(1)
    sys.exit(0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "no message"


if __name__ == "__main__":
    main()
