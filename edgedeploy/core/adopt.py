"""Models users already have: a ``.onnx`` file (external data beside it) or a directory holding
``model.onnx`` as optimum, onnxruntime or Olive write it (tokenizer and config when present).
Such a model is *adopted*: its files are hashed into a manifest of source kind ``onnx``, whose
validation reads "not run: no PyTorch source". ``open_model`` keeps that manifest in memory
(bench, inspect, estimate, eval; quantize writes it into its output); ``adopt`` publishes it
as an artifact."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from edgedeploy.core.artifact import MODEL, Artifact, external_data_locations, finalize_manifest, hash_files, is_artifact
from edgedeploy.core.atomic import refuse_same, staged_directory
from edgedeploy.core.bounded import check_size, limit_for, read_json_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.core.manifest import Generation, Lineage, Manifest, SourceInfo, TensorSpec, Validation
from edgedeploy.core.signature import graph_entries, onnx_signature

log = logging.getLogger("edgedeploy")
# what travels with an adopted model: the files tokenizers, configs and processors read
COMPANIONS = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "preprocessor_config.json",
)
NOT_RUN = "not run: no PyTorch source (an adopted ONNX model)"
# an encoder-decoder as optimum exports it (its merged decoder, when there is one, is left out)
SEQ2SEQ_FILES = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx", "decoder-with-past": "decoder_with_past_model.onnx"}


def open_model(path, verify: bool = True) -> Artifact:
    """An edgedeploy artifact as is; a ``.onnx`` file or a directory with ``model.onnx`` adopted in memory."""
    path = Path(path)
    if path.is_dir() and not is_artifact(path) and (path / MODEL).is_file():
        return _adopted(path, MODEL)
    if path.is_dir() and not is_artifact(path) and all((path / f).is_file() for f in SEQ2SEQ_FILES.values()):
        return _adopted(path, SEQ2SEQ_FILES["encoder"], SEQ2SEQ_FILES)
    if path.is_file() and path.suffix == ".onnx":
        return _adopted(path.parent, path.name)
    return Artifact.load(path, verify=verify)


def is_onnx_model(path) -> bool:
    """Whether ``path`` is an ONNX model edgedeploy adopts (a ``.onnx`` file, or a directory with
    ``model.onnx`` or optimum's three seq2seq graphs) rather than a model to export."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".onnx"
    return path.is_dir() and not is_artifact(path) and ((path / MODEL).is_file() or all((path / f).is_file() for f in SEQ2SEQ_FILES.values()))


def adopt(model, out: Path, force: bool = False) -> Artifact:
    """Publish an adopted model as an artifact at ``out``: its files copied, the manifest written last."""
    art = open_model(model)
    if not art.adopted:
        raise BadInput(f"{model}: is already an edgedeploy artifact; nothing to adopt")
    refuse_same(out, art.path, "the model's directory")
    with staged_directory(out, force=force, is_artifact=is_artifact) as stage:
        for name in art.manifest.files:
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(art.path / name, stage / name, follow_symlinks=False)
        finalize_manifest(stage, art.manifest.derived())
    return Artifact.load(out)


def _adopted(root: Path, model_file: str, graphs: dict | None = None) -> Artifact:
    model_path = root / model_file
    extra: list[str] = []
    for name in (graphs or {"model": model_file}).values():
        graph = root / name
        if graph.is_symlink():
            raise BadInput(f"{graph}: is a symbolic link; give the model file itself")
        if graph.stat().st_size == 0:
            raise BadInput(f"{graph}: is empty")
        for data in external_data_locations(graph):
            f = root / data
            if f.is_symlink() or not f.is_file():
                raise BadInput(f"{graph}: its external data {data} is missing or a link; keep the data file beside the model")
            extra += [data] if data not in extra else []
    linked = [c for c in COMPANIONS if (root / c).is_symlink()]
    if linked:
        log.warning("%s: not adopting %s: symbolic links are never followed; copy the files in", root, ", ".join(linked))
    graph_names = list((graphs or {"model": model_file}).values())
    companions = [c for c in COMPANIONS if c not in graph_names and (root / c).is_file() and c not in linked]
    check_companions(root, companions)
    names = [*graph_names, *extra, *companions]
    files = hash_files(root, names)
    try:
        inputs, outputs, opset, params = onnx_signature(model_path)
    except Exception as exc:  # onnx's DecodeError and friends
        raise BadInput(f"{model_path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not outputs or not opset:
        raise BadInput(f"{model_path}: not an ONNX model (no graph outputs or opset); it may be truncated or another format")
    name = root.name if model_file == MODEL or graphs else model_path.stem
    manifest = Manifest(
        source=SourceInfo(kind="onnx", name=name, path=str(model_path.resolve()), family=_family(inputs)),
        lineage=Lineage(step="adopt"),
        model_file=model_file,
        files=files,
        size_bytes=sum(f.size for f in files.values()),
        opset=opset,
        inputs=inputs,
        outputs=outputs,
        parameters=params,
        validation=Validation(passed=None, reason=NOT_RUN),
        vocab_size=_vocab_size(root),
    )
    if graphs:
        try:
            manifest.graphs, manifest.parameters = graph_entries(root, graphs)
        except Exception as exc:  # onnx's DecodeError and friends
            raise BadInput(f"{root}: a graph is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
        manifest.generation = _seq2seq_generation(root, manifest.graph("decoder-with-past").inputs)
    art = Artifact(root, manifest, adopted=True)
    art.external_data = extra
    art.name = name
    return art


def _family(inputs: list[dict]) -> str:
    """transformer when the model takes token ids (quantization op types and tolerances follow)."""
    return "transformer" if any("input_ids" in i["name"] for i in inputs) else "module"


def check_companions(root: Path, names: list[str]) -> None:
    """Each companion file within its size limit (by its metadata, before reading), and each JSON
    one parsed: a file a tokenizer or config loader would choke on later is exit 2 now, naming it."""
    for name in names:
        path = root / name
        check_size(path, limit_for(name), "companion file")
        if name.endswith(".json"):
            read_json_bounded(path, name, limit_for(name))


def _config(root: Path) -> dict:
    path = root / "config.json"
    if not path.is_file() or path.is_symlink():
        return {}
    return read_json_bounded(path, "config.json")


def _count(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _vocab_size(root: Path) -> int | None:
    v = _count(_config(root).get("vocab_size"))
    return v or None


def _seq2seq_generation(root: Path, past: list[TensorSpec]) -> Generation:
    """What generation needs, from config.json (the graphs carry the cache's shape): the start
    token as transformers' generate picks it (decoder_start_token_id, else bos, else pad)."""
    cfg = _config(root)
    start = next((_count(cfg.get(k)) for k in ("decoder_start_token_id", "bos_token_id", "pad_token_id") if _count(cfg.get(k)) is not None), None)
    if start is None:
        raise BadInput(f"{root}: an encoder-decoder needs config.json with decoder_start_token_id (or bos/pad) to generate")
    return Generation(
        layers=sum(1 for i in past if i.name.startswith("past_key_values.") and i.name.endswith(".decoder.key")),
        max_positions=next((_count(cfg.get(k)) for k in ("max_target_positions", "max_position_embeddings") if _count(cfg.get(k))), None),
        eos_token_id=cfg.get("eos_token_id") if _count(cfg.get("eos_token_id")) is not None else None,
        architecture="encoder-decoder",
        decoder_start_token_id=start,
    )
