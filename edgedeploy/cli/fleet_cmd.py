"""Remote and fleet runs of `edgedeploy bench --host/--hosts` (presentation only)."""

from pathlib import Path

import click

from edgedeploy.bench import bench
from edgedeploy.bench import require_stable as check_stable
from edgedeploy.cli.common import emit_json, refuse_inside_inputs, table
from edgedeploy.core.atomic import write_json_atomic
from edgedeploy.core.errors import BadInput, EdgeDeployError
from edgedeploy.device.fleet import entries, remote_options, run_all
from edgedeploy.runtimes.names import unique_file_names


def run_fleet(artifacts, opts, output, as_json):
    """One device: measure it and return its results for the caller to report like a
    local run. Several: measure them in parallel, report here and return None."""

    devices = entries(opts.host, opts.hosts, opts.limit)
    single = len(devices) == 1
    if output is not None and single and output.is_dir():
        raise BadInput(f"-o {output}: is a directory; give a file path for one device's results JSON")
    if output is not None and not single and output.exists() and not output.is_dir():
        raise BadInput(f"-o {output}: is a file; a fleet writes one results file per device into a directory")
    refuse_inside_inputs(output, artifacts, "-o")

    def one(entry):
        entry_opts = opts.model_copy(update={"profile": entry.get("profile") or opts.profile})
        doc = bench(artifacts, entry_opts, remote=remote_options(entry, opts))
        if opts.note:
            doc["note"] = opts.note
        return doc

    if single:
        return one(devices[0])
    results = run_all(devices, one, opts.parallel)
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
        for res, fname in zip(results.values(), unique_file_names(results, ".json")):
            if "ok" in res:
                write_json_atomic(Path(output) / fname, res["ok"])
    rows = []
    for host, res in results.items():
        if "ok" in res:
            for r in res["ok"]["results"]:
                lat = r["latency_ms"]
                rows.append(
                    [
                        host,
                        r["name"],
                        f"{lat['p50']:.2f}",
                        f"{lat['p90']:.2f}" if lat["p90"] else "n/a",
                        f"{lat['cv']:.1%}",
                        f"{r['ratio_to_first']:.2f}x",
                        "yes" if r["stable"] else "UNSTABLE",
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
    if opts.require_stable:
        for res in results.values():
            check_stable(res["ok"])
