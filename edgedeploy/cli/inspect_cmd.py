from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option, table
from edgedeploy.core.adopt import open_model


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
    src, lineage = m.source, m.lineage
    rows = [
        ["artifact", str(art.path)],
        ["digest", (m.digest or art.digest)[:16]],
        ["source", f"{src.name} ({src.kind}, task {src.task})"],
        ["parent", (lineage.parent if lineage else None) or "-"],
        ["step", lineage.step if lineage else "-"],
        ["opset", m.opset],
        ["parameters", f"{m.parameters or 0:,}"],
        ["size", f"{m.size_bytes / 1e6:.2f} MB"],
    ]
    for g in m.graphs or []:
        rows.append([f"graph {g.role}", f"{g.file}: {len(g.inputs)} inputs, {len(g.outputs)} outputs, {g.parameters or 0:,} parameters"])
    if m.generation is not None:
        rows.append(["generation", ", ".join(f"{k} {v}" for k, v in m.generation.model_dump(exclude_none=True).items())])
    rows += [[f"input {spec.name}", f"{spec.dtype} {spec.shape}"] for spec in m.inputs]
    rows += [[f"output {spec.name}", f"{spec.dtype} {spec.shape}"] for spec in m.outputs]
    v = m.validation
    if v and v.passed is None:
        rows.append(["validation", v.reason or "not run"])
    elif v:
        rows.append(["validation", f"{'passed' if v.passed else 'FAILED'}: max_abs_diff {v.max_abs_diff:.3g} (atol {v.atol:g})"])
    q = m.quantization
    if q:
        rows.append(["quantization", f"{q.method} (profile {q.profile or '-'}), {q.compression_ratio:.2f}x smaller"])
    f = m.fidelity
    if f:
        rows.append(["fidelity", f"mean cosine {f.mean_cosine:.4f}, worst {f.worst_cosine:.4f} on {f.samples} samples"])
    rows += [[f"file {name}", f"{meta.size:,} B sha256 {meta.sha256[:12]}"] for name, meta in sorted(m.files.items())]
    click.echo(table(rows, ["field", "value"]))
