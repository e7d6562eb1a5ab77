import sys
from pathlib import Path

import click

from edgedeploy.bench import BenchOptions, require_latency_budget, require_unthrottled, throttled
from edgedeploy.bench import require_stable as check_stable
from edgedeploy.bench_fleet import bench_targets
from edgedeploy.cli.common import check_result_file, emit_json, fmt_bytes, fmt_ms, json_option, refuse_inside_inputs, table, warn
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.core.options import click_options, from_cli
from edgedeploy.runtimes.stats import UNSTABLE_CV


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
        rows.append(
            [
                r["name"],
                fmt_ms(lat["p50"]),
                fmt_ms(lat["p90"]),
                fmt_ms(lat["p99"]),
                fmt_ms(lat["mean"]),
                f"{lat['cv']:.1%}",
                f"{r['throughput_per_s']:.1f}" if r["throughput_per_s"] else "n/a",
                fmt_bytes(r["model_size_bytes"]) if r.get("model_size_bytes") else "-",
                f"{r['ratio_to_first']:.2f}x" if r.get("ratio_to_first") else "-",
                "THROTTLED" if throttled(r) else "yes" if r["stable"] else "UNSTABLE",
                r["samples"],
            ]
        )
    env = doc["environment"]
    head = (
        f"profile {doc['profile']} | {env['cpu_model']} ({env['arch']}, {env['cores']} cores) | onnxruntime {env['onnxruntime']} "
        f"| providers {','.join(env.get('providers_used') or [])} | threads {env['threads']['intra_op']} | scenario {doc['scenario']}"
        + (" | interleaved" if doc.get("interleaved") else "")
    )
    body = table(rows, ["model", "p50 ms", "p90 ms", "p99 ms", "mean ms", "cv", "samples/s", "size", "p50 vs first", "stable", "n"])
    if doc.get("note"):
        head = f"NOTE: {doc['note']}\n" + head
    return head + "\n" + body


def render_generation(results: list[dict]) -> str:
    """Greedy generation: time to first token, prefill and decode rates, inter-token latency."""
    rows = []
    for r in results:
        g = r["generation"]
        it = g.get("inter_token_ms") or {}
        rows.append(
            [
                r["name"],
                f"{g['prompt_tokens'] or 'features'}+{g['new_tokens']}",
                fmt_ms(g["ttft_ms"]["p50"]),
                f"{g['prefill_tokens_per_s']:.0f}" if g["prefill_tokens_per_s"] else "-",
                f"{g['decode_tokens_per_s']:.1f}" if g["decode_tokens_per_s"] else "-",
                fmt_ms(it.get("p50")),
                fmt_ms(it.get("p90")),
                g["runs"],
            ]
        )
    return "generation (greedy, KV cache):\n" + table(
        rows, ["model", "prompt+new", "TTFT p50 ms", "prefill tok/s", "decode tok/s", "inter-token p50 ms", "p90 ms", "runs"]
    )


def render_fleet(results: dict, as_json: bool, require_stable: bool) -> None:
    """A fleet's table (or JSON), then exit 3 when a device failed, 4 when one throttled (or was unstable and that was required)."""
    rows = []
    for host, res in results.items():
        if "ok" in res:
            for r in res["ok"]["results"]:
                lat = r["latency_ms"]
                p90 = f"{lat['p90']:.2f}" if lat["p90"] else "n/a"
                rows.append(
                    [
                        host,
                        r["name"],
                        f"{lat['p50']:.2f}",
                        p90,
                        f"{lat['cv']:.1%}",
                        f"{r['ratio_to_first']:.2f}x",
                        "THROTTLED" if throttled(r) else "yes" if r["stable"] else "UNSTABLE",
                    ]
                )
        else:
            rows.append([host, "FAILED", "-", "-", "-", "-", res["error"][:80]])
    if as_json:
        emit_json(results)
    else:
        click.echo(table(rows, ["device", "model", "p50 ms", "p90 ms", "cv", "vs first", "stable"]))
    failed = [h for h, r in results.items() if "error" in r]
    if failed:
        raise EdgeDeployError(f"{len(failed)} of {len(results)} device(s) failed: {', '.join(failed)}", exit_code=3)
    for res in results.values():
        require_unthrottled(res["ok"])
        if require_stable:
            check_stable(res["ok"])


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write results JSON here (a directory with one file per device for a fleet).")
@click_options(BenchOptions)
@json_option
def command(artifacts, output, as_json, **settings):
    """Measure latency and throughput of one or more ARTIFACTS (interleaved when several),
    on this host or on devices over SSH."""

    opts = from_cli(BenchOptions, settings)
    require_stable = opts.require_stable
    if opts.limit_hosts and not opts.hosts:
        raise BadInput("--limit-hosts selects hosts of a --hosts inventory; give one")
    if not (opts.host or opts.hosts):  # a fleet's -o is a directory (checked once the devices are known)
        check_result_file(output, artifacts)
    if opts.save_outputs is not None and opts.save_outputs.exists() and not opts.save_outputs.is_dir():
        raise BadInput(f"--save-outputs {opts.save_outputs}: is a file; give a directory for the <model>.npz files")
    refuse_inside_inputs(opts.save_outputs, artifacts, "--save-outputs")
    single, doc = bench_targets(list(artifacts), opts, output, progress=None if as_json else _progress())
    if not single:
        render_fleet(doc, as_json, require_stable)
        return
    if output:
        write_json_atomic(output, doc)
    if as_json:
        emit_json(doc)
    else:
        click.echo("", err=True)
        if "remote" in doc:
            click.echo(f"device {doc['remote']['host']} ({doc['measured']})")
        click.echo(render(doc))
        gen = [r for r in doc["results"] if r.get("generation")]
        if gen:
            click.echo(render_generation(gen))
        for r in doc["results"]:
            if r.get("target_qps") is not None:
                verdict = "" if r["budget_held"] is None else f" vs budget {r['latency_budget_ms']:g} ms: {'held' if r['budget_held'] else 'MISSED'}"
                click.echo(
                    f"{r['name']}: {r['queries']} queries at {r['target_qps']:g} qps, p99 {fmt_ms(r['latency_ms']['p99'])} ms from arrival{verdict}"
                )
            elif r.get("samples_per_query") is not None:
                click.echo(
                    f"{r['name']}: {r['queries']} queries of {r['samples_per_query']} samples, p99 {fmt_ms(r['latency_ms']['p99'])} ms per query"
                )
        for r in doc["results"]:
            placed = (r.get("session") or {}).get("placement")
            if placed:
                click.echo(f"{r['name']}: {placed['summary']}")
            fell_back = (r.get("session") or {}).get("fallback")
            if fell_back:
                warn(
                    f"{r['name']}: {', '.join(fell_back)} not available; measured on {', '.join(r['session'].get('providers_used') or [])} (--allow-fallback)"
                )
        if doc["unstable"]:
            warn(f"unstable (CV > {UNSTABLE_CV:.0%}): {', '.join(doc['unstable'])}; the host is noisy, trust the ratios more than absolute times")
        if output:
            click.echo(f"results: {output}")
    require_unthrottled(doc)
    if require_stable:
        check_stable(doc)
    require_latency_budget(doc)
