"""Render an HTML file in Debian's headless Chromium: a screenshot plus the console messages
(Chromium logs them as INFO:CONSOLE lines with --enable-logging=stderr)."""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(html: Path, png: Path, size=(1200, 2000)) -> list[str]:
    """Screenshot ``html`` into ``png``; return its console messages (errors, uncaught exceptions, logs)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                f"--window-size={size[0]},{size[1]}",
                Path(html).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert png.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return [m.group(1) for m in re.finditer(r"CONSOLE[^\]]*\] (.*)", proc.stderr)]


def ink(png: Path) -> tuple[float, int]:
    """(share of pixels that are not white, number of distinct colours) of a screenshot."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20) or []
    total = img.width * img.height
    white = sum(c for c, rgb in colors if rgb == (255, 255, 255))
    return 1 - white / total, len(colors)
