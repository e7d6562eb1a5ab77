"""``edgedeploy bench --host/--hosts``: the devices of the flags and the inventory, each measured
over SSH with the same harness as a local run; several in parallel, one results file each."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.bench import BenchOptions, bench
from edgedeploy.core.atomic import refuse_inside, write_json_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.device.fleet import entries, remote_options, run_all
from edgedeploy.runtimes.names import unique_file_names


def bench_devices(artifacts: list, opts: BenchOptions, output: Path | None) -> tuple[bool, dict]:
    """(single, result): one device's results document, or ``{host: {"ok": doc} | {"error": msg}}``
    for a fleet, whose documents are written into the folder ``output`` (one file per device)."""
    devices = entries(opts.host, opts.hosts, opts.limit_hosts)
    single = len(devices) == 1
    if output is not None and single and output.is_dir():
        raise BadInput(f"-o {output}: is a directory; give a file path for one device's results JSON")
    if output is not None and not single and output.exists() and not output.is_dir():
        raise BadInput(f"-o {output}: is a file; a fleet writes one results file per device into a directory")
    for art in artifacts:
        if output is not None and Path(art).is_dir():
            refuse_inside(output, art, f"the artifact {art} (-o)")

    def one(entry):
        entry_opts = opts.model_copy(update={"profile": entry.get("profile") or opts.profile})
        doc = bench(artifacts, entry_opts, remote=remote_options(entry, opts))
        if opts.note:
            doc["note"] = opts.note
        return doc

    if single:
        return True, one(devices[0])
    results = run_all(devices, one, opts.parallel)
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
        for res, fname in zip(results.values(), unique_file_names(results, ".json")):
            if "ok" in res:
                write_json_atomic(Path(output) / fname, res["ok"])
    return False, results
