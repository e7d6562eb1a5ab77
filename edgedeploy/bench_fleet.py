"""``edgedeploy bench``'s targets: this host, or the devices of --host and the --hosts inventory,
each measured with the same harness (``targets.py``); a fleet in parallel, one results file each."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.bench import BenchOptions, bench
from edgedeploy.core.atomic import refuse_inside, write_json_atomic
from edgedeploy.core.errors import BadInput
from edgedeploy.device.fleet import entries, run_all
from edgedeploy.runtimes.names import unique_file_names
from edgedeploy.targets import LocalTarget, ssh_target


def bench_targets(artifacts: list, opts: BenchOptions, output: Path | None, progress=None) -> tuple[bool, dict]:
    """(single, result): the devices of --host/--hosts, or this host when none is named, each
    measured with the same harness. One target gives its results document; a fleet gives
    ``{host: {"ok": doc} | {"error": msg}}`` and writes one results file per device into the
    folder ``output``."""
    devices = entries(opts.host, opts.hosts, opts.limit_hosts)
    targets = {e["host"]: (ssh_target(e, opts), e.get("profile")) for e in devices} or {"this host": (LocalTarget(), None)}
    for target, _ in targets.values():
        target.check(opts)
    single = len(targets) == 1
    if output is not None and single and output.is_dir():
        raise BadInput(f"-o {output}: is a directory; give a file path for one device's results JSON")
    if output is not None and not single and output.exists() and not output.is_dir():
        raise BadInput(f"-o {output}: is a file; a fleet writes one results file per device into a directory")
    for art in artifacts:
        if output is not None and Path(art).is_dir():
            refuse_inside(output, art, f"the artifact {art} (-o)")

    def one(entry):
        target, profile = targets[entry["host"]]
        entry_opts = opts.model_copy(update={"profile": profile or opts.profile})
        doc = bench(artifacts, entry_opts, target=target, progress=progress if single else None)
        if opts.note:
            doc["note"] = opts.note
        return doc

    if single:
        return True, one({"host": next(iter(targets))})
    results = run_all(devices, one, opts.parallel)
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
        for res, fname in zip(results.values(), unique_file_names(results, ".json")):
            if "ok" in res:
                write_json_atomic(Path(output) / fname, res["ok"])
    return False, results
