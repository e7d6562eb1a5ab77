from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.adopt import open_model
from edgedeploy.core.errors import BadInput
from edgedeploy.device.profiles import load
from edgedeploy.estimate import calibrate, count, default_dims, roofline
from edgedeploy.runtimes.inputs import ShapeError, parse_shape


@click.command("estimate")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--profile", "profile_names", multiple=True, required=True, help="Target profile(s) to estimate for.")
@click.option(
    "--shape",
    default=None,
    help="Bind symbolic dims for the FLOP and byte counts [default: batch=1,sequence=128 where the model has them; other dims the size validation ran at].",
)
@click.option("--no-calibrate", is_flag=True, help="Skip measuring the method's error on this host.")
@json_option
def command(artifact, profile_names, shape, no_calibrate, as_json):
    """ESTIMATE latency on a target from FLOPs, bytes and the profile's peaks (roofline).

    Estimates are never measurements: every figure is labelled, and the method's error
    measured on this host is printed beside it.
    """

    art = open_model(artifact)
    art.require_single_graph("estimate")
    try:
        sh = parse_shape(shape) if shape else default_dims(art)
        counts = count(art.model_path, sh)
    except ShapeError as exc:
        raise BadInput(str(exc)) from None
    cal = None if no_calibrate else calibrate(art.model_path, sh, counts)
    out = {"artifact": str(art.path), "shape": sh, "counts": counts, "calibration": cal, "estimates": []}
    for name in profile_names:
        est = roofline(counts, load(name))
        est["profile"] = name
        if cal:
            est["calibrated_ms"] = est["estimated_ms"] * cal["measured_over_estimated"]
        out["estimates"].append(est)
    if as_json:
        emit_json(out)
        return
    click.echo(
        f"{art.path.name} at {','.join(f'{k}={v}' for k, v in sh.items()) or 'static shapes'}: {(counts['flops_float'] + counts['flops_int']) / 1e9:.2f} GFLOP "
        f"({counts['flops_int'] / 1e9:.2f} integer), {counts['bytes'] / 1e6:.0f} MB moved (weights {counts['weight_bytes'] / 1e6:.0f} MB)"
    )
    if cal:
        click.echo(
            f"method error on this host ({cal['host_profile']}): measured p50 {cal['measured_p50_ms']:.2f} ms vs "
            f"estimated {cal['estimated_ms']:.2f} ms = {cal['measured_over_estimated']:.2f}x"
        )
    for e in out["estimates"]:
        line = f"ESTIMATE {e['profile']}: {e['estimated_ms']:.1f} ms ({e['bound']}-bound, roofline)"
        if "calibrated_ms" in e:
            line += f"; calibrated by this host's error: {e['calibrated_ms']:.1f} ms (estimate)"
        click.echo(line)
