"""The docs a newcomer reads: the README stays a short front door, every page it links exists,
the CLI reference is the generated one, and every `edgedeploy CMD --flag` in a code block names
a flag that command has."""

from __future__ import annotations

import re
import subprocess
import sys

import click
from conftest import ROOT

from edgedeploy.cli.main import COMMANDS, cli


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)#]+\.md)\)", text)
    assert {"docs/how-it-works.md", "docs/cli.md", "docs/untrusted-input.md"} <= set(links)
    for page in [ROOT / link for link in links] + list((ROOT / "docs").glob("*.md")):
        assert page.is_file(), page
        for link in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / link).is_file(), f"{page.name} links to a missing {link}"


def test_the_cli_reference_is_not_stale():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_flag_in_the_docs_exists_on_its_command():
    ctx = click.Context(cli)
    flags = {}
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        opts = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)} | {"--help", "--debug", "--quiet", "--verbose"}
        if isinstance(command, click.Group):
            opts |= {
                o for sub in command.list_commands(ctx) for p in command.get_command(ctx, sub).get_params(ctx) for o in (*p.opts, *p.secondary_opts)
            }
        flags[name] = opts
    checked, wrong = 0, []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if page.name == "cli.md":
            continue
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                m = re.match(r"\s*edgedeploy\s+([a-z-]+)\b(.*)", line.split("#")[0])
                if not m or m.group(1) not in flags:
                    continue
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2)):
                    checked += 1
                    if flag not in flags[m.group(1)]:
                        wrong.append(f"{page.name}: edgedeploy {m.group(1)} {flag}")
    assert checked > 50
    assert not wrong, "\n".join(wrong)
