import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.device.doctor import diagnose


@click.command("doctor")
@json_option
def command(as_json):
    """Detect this host, name the closest device profile and what makes numbers unreliable."""
    d = diagnose()
    if as_json:
        emit_json(d)
        return
    h = d["host"]
    click.echo(f"host: {h['cpu_model']} ({h['arch']}, {h['cores']} cores), {h['os']}, Python {h['python']}")
    click.echo(f"ISA: {' '.join(h['isa_flags']) or '-'}")
    click.echo(f"onnxruntime {h['onnxruntime']}, providers: {', '.join(h['providers_available'])}")
    click.echo(f"governor: {h['governor'] or 'not readable'}")
    if d["jetson"]:
        j = d["jetson"]
        click.echo(f"Jetson: L4T R{j['l4t']} ({j['jetpack'] or 'unknown JetPack'}), power mode {j.get('power_mode') or 'not readable'}")
    click.echo(f"closest profile: {d['closest_profile']}")
    for w in d["warnings"]:
        click.echo(f"warning: {w}")
