import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.device import model_cache
from edgedeploy.device.fleet import DevicesOptions, entries, run_all
from edgedeploy.targets import ssh_target


@click.command("cleanup")
@click_options(DevicesOptions)
@json_option
def command(as_json, **settings):
    """Remove the model cache that bench, tune and recipes keep on devices ($XDG_CACHE_HOME/edgedeploy/models) and its TensorRT engines."""
    opts = from_cli(DevicesOptions, settings)
    devices = entries(opts.host, opts.hosts, opts.limit_hosts)
    if not devices:
        raise BadInput("give --host (or --hosts) naming the device(s) whose model cache to remove")

    def one(entry):
        target = ssh_target(entry, opts)
        return model_cache.clean(target.host, target.python)

    results = run_all(devices, one, opts.parallel)
    if as_json:
        emit_json(results)
    else:
        for host, res in results.items():
            if "ok" in res:
                r = res["ok"]
                click.echo(f"{host}: removed {r['models']} cached model(s), {r['bytes'] / 1e6:.1f} MB ({r['root']})")
            else:
                click.echo(f"{host}: FAILED: {res['error']}")
    failed = [h for h, r in results.items() if "error" in r]
    if failed:
        raise EdgeDeployError(f"{len(failed)} of {len(results)} device(s) failed: {', '.join(failed)}", exit_code=3)
