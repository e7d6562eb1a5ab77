from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option, table
from edgedeploy.core.adopt import open_model
from edgedeploy.quality.fidelity import worst_cosine


@click.command("inspect")
@click.argument("artifact", type=click.Path(path_type=Path))
@json_option
def command(artifact, as_json):
    """Show an artifact's manifest: source, lineage, signature, validation, files."""
    art = open_model(artifact, verify=False)
    m = art.manifest
    if as_json:
        emit_json(m)
        return
    src = m["source"]
    rows = [
        ["artifact", str(art.path)],
        ["digest", m.get("digest", art.digest)[:16]],
        ["source", f"{src.get('name')} ({src.get('kind')}, task {src.get('task')})"],
        ["parent", (m.get("lineage") or {}).get("parent") or "-"],
        ["step", (m.get("lineage") or {}).get("step", "-")],
        ["opset", m["opset"]],
        ["parameters", f"{m.get('parameters', 0):,}"],
        ["size", f"{m['size_bytes'] / 1e6:.2f} MB"],
    ]
    for g in m.get("graphs") or []:
        rows.append(
            [f"graph {g['role']}", f"{g['file']}: {len(g['inputs'])} inputs, {len(g['outputs'])} outputs, {g.get('parameters') or 0:,} parameters"]
        )
    if isinstance(m.get("generation"), dict):
        rows.append(["generation", ", ".join(f"{k} {v}" for k, v in m["generation"].items())])
    for spec in m["inputs"]:
        rows.append([f"input {spec['name']}", f"{spec['dtype']} {spec['shape']}"])
    for spec in m["outputs"]:
        rows.append([f"output {spec['name']}", f"{spec['dtype']} {spec['shape']}"])
    v = m.get("validation")
    if v and v.get("passed") is None:
        rows.append(["validation", v.get("reason", "not run")])
    elif v:
        rows.append(["validation", f"{'passed' if v['passed'] else 'FAILED'}: max_abs_diff {v['max_abs_diff']:.3g} (atol {v['atol']:g})"])
    q = m.get("quantization")
    if q:
        rows.append(["quantization", f"{q['method']} (profile {q.get('profile') or '-'}), {q.get('compression_ratio', 0):.2f}x smaller"])
    f = m.get("fidelity")
    if f:
        rows.append(["fidelity", f"mean cosine {f['mean_cosine']:.4f}, worst {worst_cosine(f):.4f} on {f['samples']} samples"])
    for name, meta in sorted(m["files"].items()):
        rows.append([f"file {name}", f"{meta['size']:,} B sha256 {meta['sha256'][:12]}"])
    click.echo(table(rows, ["field", "value"]))
