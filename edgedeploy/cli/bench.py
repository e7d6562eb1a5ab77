import sys
from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, fmt_bytes, fmt_ms, json_option, table, warn


def _progress():
    import time

    tty = sys.stderr.isatty()
    state = {}
    last = [0.0]

    def report(name, done, total):
        state[name] = (done, total)
        finished = all(d >= t for d, t in state.values())
        if not tty and not finished and time.monotonic() - last[0] < 10:  # logs get a line every 10 s, not every block
            return
        last[0] = time.monotonic()
        line = "  ".join(f"{n} {d}/{t}" for n, (d, t) in state.items())
        click.echo(("\r" if tty else "") + f"benchmarking: {line}", err=True, nl=not tty)

    return report


def render(doc: dict) -> str:
    rows = []
    for r in doc["results"]:
        lat = r["latency_ms"]
        rows.append([
            r["name"], fmt_ms(lat["p50"]), fmt_ms(lat["p90"]), fmt_ms(lat["p99"]), fmt_ms(lat["mean"]), f"{lat['cv']:.1%}",
            f"{r['throughput_per_s']:.1f}" if r["throughput_per_s"] else "n/a",
            fmt_bytes(r["model_size_bytes"]) if r.get("model_size_bytes") else "-",
            f"{r['ratio_to_first']:.2f}x" if r.get("ratio_to_first") else "-",
            "yes" if r["stable"] else "UNSTABLE", r["samples"],
        ])
    env = doc["environment"]
    head = (f"profile {doc['profile']} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores) | onnxruntime {env['onnxruntime']} "
            f"| providers {','.join(env.get('providers_used') or [])} | threads {env['threads']['intra_op']} | scenario {doc['scenario']}"
            + (" | interleaved" if doc.get("interleaved") else ""))
    body = table(rows, ["model", "p50 ms", "p90 ms", "p99 ms", "mean ms", "cv", "samples/s", "size", "p50 vs first", "stable", "n"])
    if doc.get("note"):
        head = f"NOTE: {doc['note']}\n" + head
    return head + "\n" + body


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--profile", help="Device profile (default: the closest to this host, as 'edgedeploy doctor' picks).")
@click.option("--shape", default="batch=1,sequence=128", show_default=True, help="Bind symbolic dims; 'batch'/'sequence' are short names.")
@click.option("--inputs", "inputs_npz", type=click.Path(path_type=Path), help="Real inputs from an .npz instead of generated ones.")
@click.option("--scenario", type=click.Choice(["single-stream", "offline", "server"]), default="single-stream", show_default=True)
@click.option("--iterations", type=int, default=200, show_default=True, help="Steady-state inferences per model (upper bound).")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Time bound in seconds for the steady state.")
@click.option("--warmup", type=int, default=20, show_default=True, help="Warm-up inferences (bounded to 5 s).")
@click.option("--threads", type=int, help="Override the profile's intra-op threads.")
@click.option("--concurrency", type=int, default=1, show_default=True, help="Sessions/threads for offline and server.")
@click.option("--qps", type=float, help="Poisson arrival rate for the server scenario.")
@click.option("--latency-budget", type=float, help="p99 budget in ms for the server scenario.")
@click.option("--baseline", type=click.Choice(["torch"]), help="Also time the PyTorch source model eagerly, interleaved.")
@click.option("--require-stable", is_flag=True, help="Exit 4 when any result has CV over 10 %.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write results JSON here (a directory with one file per device for a fleet).")
@click.option("--host", "hosts", multiple=True, help="Run on user@host[:port] or a ~/.ssh/config Host over SSH. Repeatable.")
@click.option("--hosts", "inventory", type=click.Path(path_type=Path), help="YAML inventory of devices (host, profile, remote_venv).")
@click.option("--ssh-config", type=click.Path(path_type=Path), help="ssh config file (ssh -F).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown host key on first use (never a changed one).")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device.")
@click.option("--remote-venv", help="Use the venv made by 'edgedeploy provision' (its bin/python).")
@click.option("--timeout", "timeout_s", type=float, default=1800, show_default=True, help="Deadline for the remote run, seconds.")
@click.option("--connect-timeout", type=float, default=10, show_default=True)
@click.option("--keep-remote", is_flag=True, help="Leave the remote work directory in place.")
@click.option("--bwlimit", type=float, help="Cap the upload rate, kB/s (slow field links).")
@click.option("--parallel", type=int, default=4, show_default=True, help="Devices measured at once in a fleet.")
@click.option("--save-outputs", type=click.Path(path_type=Path), help="Save each model's inputs and outputs (<model>.npz) here, to compare devices.")
@click.option("--note", help="A label stored with the results and shown with the table (e.g. 'emulated').")
@json_option
def command(artifacts, profile, shape, inputs_npz, scenario, iterations, duration, warmup, threads, concurrency, qps, latency_budget, baseline,
            require_stable, output, hosts, inventory, ssh_config, accept_new_host_key, remote_python, remote_venv, timeout_s, connect_timeout,
            keep_remote, bwlimit, parallel, save_outputs, note, as_json):
    """Measure latency and throughput of one or more ARTIFACTS (interleaved when several),
    on this host or on devices over SSH."""
    from edgedeploy.bench import bench
    from edgedeploy.bench import require_stable as check_stable
    from edgedeploy.core.atomic import write_json_atomic

    opts = dict(inputs_npz=inputs_npz, scenario=scenario, iterations=iterations, duration_s=duration, warmup=warmup, concurrency=concurrency,
                qps=qps, latency_budget_ms=latency_budget, threads=threads, save_outputs=save_outputs)
    if hosts or inventory:
        from edgedeploy.cli.fleet_cmd import run_fleet
        from edgedeploy.core.errors import BadInput

        if baseline:
            raise BadInput("--baseline torch runs on the host; it cannot be combined with --host/--hosts")
        doc = run_fleet(list(artifacts), profile, shape, opts, hosts, inventory, dict(
            ssh_config=ssh_config, accept_new_host_key=accept_new_host_key, remote_python=remote_python, remote_venv=remote_venv,
            timeout_s=timeout_s, connect_timeout=connect_timeout, keep_remote=keep_remote, bwlimit=bwlimit, parallel=parallel),
            output, as_json, require_stable, note)
        if doc is None:  # a fleet: run_fleet reported every device
            return
    else:
        doc = bench(list(artifacts), profile, shape, baseline=baseline, progress=None if as_json else _progress(), **opts)
    if note:
        doc["note"] = note
    if output:
        write_json_atomic(output, doc)
    if as_json:
        emit_json(doc)
    else:
        click.echo("", err=True)
        if "remote" in doc:
            click.echo(f"device {doc['remote']['host']} ({doc['measured']})")
        click.echo(render(doc))
        for r in doc["results"]:
            if r.get("budget_held") is not None:
                click.echo(f"{r['name']}: p99 {fmt_ms(r['latency_ms']['p99'])} ms vs budget {r['latency_budget_ms']} ms: {'held' if r['budget_held'] else 'MISSED'}")
        if doc["unstable"]:
            warn(f"unstable (CV > 10 %): {', '.join(doc['unstable'])}; the host is noisy, trust the ratios more than absolute times")
        if output:
            click.echo(f"results: {output}")
    if require_stable:
        check_stable(doc)
