from pathlib import Path

import click
from pydantic import Field

from edgedeploy.bench import RemoteOptions
from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.errors import BadInput
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.device import model_cache
from edgedeploy.device.fleet import entries, remote_options


class CleanupOptions(RemoteOptions):
    """Which devices' model caches to remove."""

    host: list[str] = Field(default_factory=list, description="user@host[:port] or a ~/.ssh/config Host. Repeatable.")
    hosts: Path | None = Field(None, description="Inventory of devices: an Ansible inventory (INI or YAML) or edgedeploy's YAML list.")
    limit: str | None = Field(None, min_length=1, description="With --hosts: only these hosts or groups.")


@click.command("cleanup")
@click_options(CleanupOptions)
@json_option
def command(as_json, **settings):
    """Remove the model cache that 'edgedeploy tune' keeps on devices (~/.cache/edgedeploy/models)."""
    opts = from_cli(CleanupOptions, settings)
    devices = entries(opts.host, opts.hosts, opts.limit)
    if not devices:
        raise BadInput("give --host (or --hosts) naming the device(s) whose model cache to remove")
    done = {}
    for entry in devices:
        remote = remote_options(entry, opts)
        done[remote["target"].label] = model_cache.clean(remote["target"], remote["python"])
    if as_json:
        emit_json(done)
        return
    for label, r in done.items():
        click.echo(f"{label}: removed {r['models']} cached model(s), {r['bytes'] / 1e6:.1f} MB ({r['root']})")
