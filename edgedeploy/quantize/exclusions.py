"""Resolve --exclude patterns to ONNX node names.

A pattern may be an ONNX node name, an op type (``MatMul``), a glob over node names
(``/encoder/layer.5/*``) or a PyTorch module name (``encoder.layer.5.output.dense``),
which matches the nodes exported inside that module's scope: torch.onnx names nodes
``/encoder/layer.5/output/dense/MatMul``. A pattern that matches nothing is an error.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from edgedeploy.core.errors import BadInput


def module_scope(node) -> str:
    """The PyTorch module a node came from. The dynamo exporter records name scopes in the
    node's metadata, the op last: as full paths (['encoder', 'encoder.layer.5', ...,
    'encoder.layer.5.output.dense', 'linear_5']) or one level each (['encoder', 'layer.5', ...,
    'linear']); the TorchScript exporter and optimum encode them in the name
    ('/encoder/layer.5/output/dense/MatMul')."""
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast

            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                break
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                break
            modules = scopes[:-1]
            if modules and all(modules[-1] == s or modules[-1].startswith(s + ".") for s in modules):
                return modules[-1]
            return ".".join(modules)
    stripped = (node.name if hasattr(node, "name") else str(node)).strip("/")
    if "/" not in stripped:
        return ""
    return stripped.rsplit("/", 1)[0].replace("/", ".")


def resolve_preprocessed(pre: Path, parent: Path, patterns) -> dict[str, list[str]]:
    """``resolve`` on the pre-processed graph ``pre``, with the module scopes of the ``parent``
    model it came from: pre-processing keeps node names, not their metadata."""
    import onnx

    scopes = {n.name: module_scope(n) for n in onnx.load(str(parent), load_external_data=False).graph.node}
    return resolve(onnx.load(str(pre), load_external_data=False), patterns, scopes)


def resolve(model, patterns, known_scopes: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Return {pattern: [node names]} and raise BadInput for a pattern matching nothing.
    ``known_scopes`` (from the model before pre-processing) wins over what ``model`` records."""
    nodes = [(n.name, n.op_type) for n in model.graph.node]
    where = {n.name: (known_scopes or {}).get(n.name) or module_scope(n) for n in model.graph.node}
    op_types = {t for _, t in nodes}
    out = {}
    for pat in patterns:
        if pat in op_types:
            hits = [n for n, t in nodes if t == pat]
        elif any(ch in pat for ch in "*?["):
            hits = [n for n, _ in nodes if fnmatch.fnmatchcase(n, pat)]
        else:
            hits = [n for n, _ in nodes if n == pat]
            if not hits:
                hits = [n for n, _ in nodes if (s := where[n]) == pat or s.startswith(pat + ".")]
        if not hits:
            raise BadInput(
                f"--exclude {pat!r} matches no node (not a node name, op type, glob or PyTorch module name in this model); "
                "see node names with: python -c \"import onnx; print([n.name for n in onnx.load('ARTIFACT/model.onnx').graph.node])\""
            )
        out[pat] = hits
    return out


def flatten(resolved: dict[str, list[str]]) -> list[str]:
    seen = []
    for hits in resolved.values():
        for h in hits:
            if h not in seen:
                seen.append(h)
    return seen
