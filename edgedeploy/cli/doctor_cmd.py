import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.device.doctor import diagnose
from edgedeploy.device.fleet import DevicesOptions, entries, run_all
from edgedeploy.device.remote_doctor import device_facts
from edgedeploy.targets import ssh_target


@click.command("doctor")
@click_options(DevicesOptions)
@json_option
def command(as_json, **settings):
    """Detect this host (or each --host/--hosts device, over SSH), name the closest device profile and what makes numbers unreliable."""
    opts = from_cli(DevicesOptions, settings)
    devices = entries(opts.host, opts.hosts, opts.limit_hosts)
    if not devices:
        d = diagnose()
        emit_json(d) if as_json else _show(d)
        return

    def one(entry):
        target = ssh_target(entry, opts)
        return diagnose(device_facts(target.host, target.python))

    results = run_all(devices, one, opts.parallel)
    if as_json:
        emit_json(results)
    for host, res in results.items():
        if as_json:
            continue
        click.echo(f"== {host}")
        _show(res["ok"]) if "ok" in res else click.echo(f"FAILED: {res['error']}")
    failed = [h for h, r in results.items() if "error" in r]
    if failed:
        raise EdgeDeployError(f"{len(failed)} of {len(results)} device(s) failed: {', '.join(failed)}", exit_code=3)


def _show(d: dict) -> None:
    h = d["host"]
    click.echo(f"host: {h.get('cpu_model')} ({h.get('arch')}, {h.get('cores')} cores), {h.get('os')}, Python {h.get('python')}")
    click.echo(f"ISA: {' '.join(h.get('isa_flags') or []) or '-'}")
    click.echo(f"onnxruntime {h.get('onnxruntime') or 'not installed'}, providers: {', '.join(h.get('providers_available') or []) or '-'}")
    click.echo(f"governor: {h.get('governor') or 'not readable'}")
    if d["jetson"]:
        j = d["jetson"]
        click.echo(f"Jetson: L4T R{j['l4t']} ({j['jetpack'] or 'unknown JetPack'}), power mode {j.get('power_mode') or 'not readable'}")
    click.echo(f"closest profile: {d['closest_profile']}")
    for w in d["warnings"]:
        click.echo(f"warning: {w}")
