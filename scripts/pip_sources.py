"""Print uv arguments for the package sources pip is configured with on this machine.

`make setup` installs with uv (several times faster than pip), but uv reads neither pip.conf nor
PIP_* variables. A machine with a local wheelhouse, a mirror or a site-wide constraints file
(pip's find-links, index-url, extra-index-url, constraint) must resolve the same with both, so
this turns `pip config list` into the matching uv flags. No configuration prints nothing.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

FLAGS = {"find-links": "--find-links", "index-url": "--index-url", "extra-index-url": "--extra-index-url", "constraint": "--constraint"}


def uv_args(config_lines: list[str]) -> list[str]:
    """``pip config list`` lines (``global.find-links='/opt/wheels'``) -> uv flags, in order,
    each value once (pip's env values and its files may both name one)."""
    out, seen = [], set()
    for line in config_lines:
        key, sep, value = line.partition("=")
        name = key.rpartition(".")[2]
        if not sep or name not in FLAGS:
            continue
        for item in shlex.split(value)[0].split() if value.strip() else []:
            if (name, item) not in seen:
                seen.add((name, item))
                out += [FLAGS[name], item]
    return out


def main() -> int:
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    print(shlex.join(uv_args(listed.stdout.splitlines())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
