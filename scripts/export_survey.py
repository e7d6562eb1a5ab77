"""Survey: does `edgedeploy export` succeed wherever optimum's own `main_export` does?

For every model type optimum has an ONNX config for, build a tiny random model of the class
for its most useful task (seq2seq and decoders with past first, then classifiers, then
feature extraction), export it with optimum's `main_export` and then with `edgedeploy export`
(task auto-detected; decoders also with past, the task optimum was given), in one process per
model type with a time limit. Where optimum succeeds and edgedeploy does not, optimum's own
validation is run on what it wrote (``own_validation``). One JSON line per model type
goes to OUT (resumable: types already there are skipped). Nothing is downloaded.

    HF_HUB_OFFLINE=1 python scripts/export_survey.py survey.jsonl [--only bert,t5] [--timeout 120]

On transformers 5 there is no optimum-onnx: ``--after scripts/export_survey.jsonl`` takes the
model types optimum wrote on transformers 4 and the task each was built for, builds each from
transformers' auto classes and exports it with ``edgedeploy export`` alone (transformers'
exporter), so the two counts are over the same types:

    HF_HUB_OFFLINE=1 python scripts/export_survey.py scripts/export_survey_transformers5.jsonl --after scripts/export_survey.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK_ORDER = (
    "text2text-generation-with-past",
    "automatic-speech-recognition-with-past",
    "text-generation-with-past",
    "image-classification",
    "audio-classification",
    "text-classification",
    "feature-extraction",
)
SMALL = {
    **dict.fromkeys(("num_hidden_layers", "num_layers", "n_layer", "encoder_layers", "decoder_layers", "num_decoder_layers", "n_layers"), 2),
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "dim", "embed_dim", "word_embed_proj_dim"), 32),
    **dict.fromkeys(("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads", "decoder_attention_heads", "n_heads"), 2),
    **dict.fromkeys(("intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "hidden_dim", "n_inner"), 64),
    "num_key_value_heads": 1,
    "vocab_size": 256,
}
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "sep_token_id", "unk_token_id")


def model_types() -> list[str]:
    import optimum.exporters.onnx.model_configs  # noqa: F401
    from optimum.exporters.tasks import TasksManager

    return sorted(t for t, v in TasksManager._SUPPORTED_MODEL_TYPE.items() if "onnx" in v)


SUB_CONFIGS = ("text_config", "vision_config", "audio_config")
_STAGES = {"embed_dim": 32, "depths": [1, 1], "num_heads": [2, 2]}  # Swin-like: per-stage lists
OVERRIDES = {  # sizes the generic shrink cannot reach: per-layer lists, sizes that default to None
    "gpt_neo": {"attention_types": [[["global", "local"], 1]]},
    **dict.fromkeys(("swin", "donut-swin", "swinv2", "swin2sr"), _STAGES),
    "squeezebert": {"embedding_size": 32},
    "esm": {"vocab_size": 33, "pad_token_id": 1, "mask_token_id": 32},
    "nemotron": {"num_key_value_heads": 1},
}


def _small(cfg) -> dict:
    """The SMALL values for the integer sizes ``cfg`` has, as constructor keywords."""
    return {k: v for k, v in SMALL.items() if isinstance(getattr(cfg, k, None), int) and not isinstance(getattr(cfg, k), bool)}


def _derived(cfg) -> dict:
    """Sizes the constructor does not derive from the small ones: a head size, a rotary size, special ids."""
    fix: dict = {}
    hidden = next((getattr(cfg, k) for k in ("hidden_size", "d_model", "n_embd") if isinstance(getattr(cfg, k, None), int)), None)
    heads = next((getattr(cfg, k) for k in ("num_attention_heads", "n_head", "num_heads") if isinstance(getattr(cfg, k, None), int)), None)
    if hidden and heads:
        head = hidden // heads
        if isinstance(getattr(cfg, "head_dim", None), int) and cfg.head_dim != head:
            fix["head_dim"] = head
        if isinstance(getattr(cfg, "rotary_dim", None), int) and cfg.rotary_dim > head:
            fix["rotary_dim"] = head
    vocab = getattr(cfg, "vocab_size", None)
    for k in TOKEN_IDS:  # special ids of the full-size config must fit the small vocabulary
        if isinstance(vocab, int) and isinstance(getattr(cfg, k, None), int) and getattr(cfg, k) >= vocab:
            fix[k] = 2
    return fix


# transformers 5 (--after): the auto class of each task the transformers 4 survey built for
AUTO = {
    "text2text-generation-with-past": "AutoModelForSeq2SeqLM",
    "automatic-speech-recognition-with-past": "AutoModelForSpeechSeq2Seq",
    "text-generation-with-past": "AutoModelForCausalLM",
    "image-classification": "AutoModelForImageClassification",
    "audio-classification": "AutoModelForAudioClassification",
    "text-classification": "AutoModelForSequenceClassification",
    "feature-extraction": "AutoModel",
    "text-to-audio": "AutoModelForTextToWaveform",
}


def build(model_type: str, dest: Path, task: str | None = None) -> str:
    """A tiny random model of ``model_type`` saved at ``dest``; returns the task it was built for
    (optimum's most useful one; ``task`` on transformers 5, built from its auto class).

    The small sizes go to the config's constructor (not set afterwards), so what it derives from
    them (layer types, stage names, attention layers, pooler sizes) agrees with them.
    """
    import torch
    import transformers

    if task is None:
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers optimum's ONNX configs)
        from optimum.exporters.tasks import TasksManager

        supported = TasksManager.get_supported_tasks_for_model_type(model_type, exporter="onnx", library_name="transformers")
        task = next((t for t in TASK_ORDER if t in supported), next(iter(supported)))
        cls = TasksManager.get_model_class_for_task(task.removesuffix("-with-past"), framework="pt", library="transformers", model_type=model_type)
    else:
        cls = getattr(transformers, AUTO[task])
    base = transformers.AutoConfig.for_model(model_type)
    kw = {**_small(base), **OVERRIDES.get(model_type, {})}
    for name in SUB_CONFIGS:  # composite models (CLIP-like): shrink the towers too
        sub = getattr(base, name, None)
        if isinstance(sub, transformers.PretrainedConfig):
            kw[name] = {**_small(sub), **_derived(type(sub)(**_small(sub)))}
    cfg = transformers.AutoConfig.for_model(model_type, **kw)
    if fix := _derived(cfg):
        cfg = transformers.AutoConfig.for_model(model_type, **kw, **fix)
    torch.manual_seed(0)
    target = getattr(cls, "_model_mapping", {}).get(type(cfg), cls) if hasattr(cls, "_model_mapping") else cls
    target = target[0] if isinstance(target, (list, tuple)) else target  # an auto class with several (DeiT): the first
    model = target(cfg)
    model.eval().save_pretrained(dest)
    return task


def one(model_type: str, work: Path, task: str | None = None) -> dict:
    """Build, then optimum's main_export (transformers 4 only: ``task`` is None), then edgedeploy's export, in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    src = work / "src"
    rec: dict = {"model_type": model_type}
    t0 = time.perf_counter()
    with_optimum = task is None
    try:
        rec["build"] = {"ok": True, "task": build(model_type, src, task)}
    except Exception as exc:  # a tiny config this script could not make: not surveyed
        rec["build"] = {"ok": False, "error": _error(exc)}
        return rec
    task = rec["build"]["task"]
    steps = ("optimum",) * with_optimum + ("edgedeploy",) + (("edgedeploy_with_past",) if task == "text-generation-with-past" else ())
    for step in steps:  # decoders: edgedeploy detects text-generation; with past is asked for, as optimum was
        t = time.perf_counter()
        try:
            if step == "optimum":
                rec[step] = {"ok": True, **_optimum(src, work, task)}
            else:
                rec[step] = {"ok": True, **_edgedeploy(src, work / step, task if step == "edgedeploy_with_past" else None)}
        except BaseException as exc:  # BadInput and ValidationFailed are SystemExit-free exceptions; keep going either way
            rec[step] = {"ok": False, "error": _error(exc), **({"asks_for_task": True} if "--task" in str(exc) else {})}
        rec[step]["seconds"] = round(time.perf_counter() - t, 1)
        if step == "edgedeploy" and rec[step].get("asks_for_task"):  # could it tell the task? could optimum?
            rec["optimum_infers"] = _optimum_task(src) if with_optimum else "cannot tell (no optimum-onnx on transformers 5)"
            t = time.perf_counter()
            try:
                rec["edgedeploy_given_task"] = {"ok": True, **_edgedeploy(src, work / "given", task)}
            except BaseException as exc:
                rec["edgedeploy_given_task"] = {"ok": False, "error": _error(exc)}
            rec["edgedeploy_given_task"]["seconds"] = round(time.perf_counter() - t, 1)
    if with_optimum and rec["optimum"]["ok"] and not all(rec[s]["ok"] for s in steps[1:]):  # does optimum's own validation pass on what it wrote?
        try:
            _optimum(src, work, rec["build"]["task"], validate=True)
            rec["optimum"]["own_validation"] = "passed"
        except BaseException as exc:
            rec["optimum"]["own_validation"] = _error(exc)
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def _optimum_task(src: Path) -> str:
    """The task optimum's own inference gives the class of ``src``, and whether optimum's ONNX
    exporter has that task for this model type."""
    import transformers
    from optimum.exporters.tasks import TasksManager

    try:  # optimum infers from a class, not from a local directory: the class config.json names
        config = json.loads((src / "config.json").read_text())
        task = TasksManager.infer_task_from_model(getattr(transformers, config["architectures"][0]))
        model_type = config["model_type"]
        supported = TasksManager.get_supported_tasks_for_model_type(model_type, exporter="onnx", library_name="transformers")
    except Exception as exc:
        return f"cannot tell ({_error(exc)})"
    return f"{task} ({'exportable' if task in supported else 'not exportable'})"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


class _Kept(logging.Handler):
    """Collects optimum's "The ONNX export succeeded with the warning: ..." lines: main_export
    logs a value mismatch (AtolError) or an output-name mismatch as a warning and returns."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        if "succeeded with the warning" in (msg := record.getMessage()):
            self.lines.append(" ".join(msg.split("The exported model was saved")[0].split()))


def _optimum(src: Path, work: Path, task: str, validate: bool = False) -> dict:
    from optimum.exporters.onnx import main_export

    out = work / ("optimum-validated" if validate else "optimum")
    kept = _Kept()
    convert = logging.getLogger("optimum.exporters.onnx.convert")
    convert.addHandler(kept)
    convert.setLevel(logging.WARNING)  # edgedeploy's export, run before in this process, quiets optimum's loggers
    main_export(str(src), output=str(out), task=task, do_validation=validate)
    if kept.lines:  # optimum's validation failed; it kept the files and said so only in its log
        raise RuntimeError(f"optimum kept the files with a warning: {kept.lines[0]}")
    return {"files": sorted(p.name for p in out.glob("*.onnx"))}


def _edgedeploy(src: Path, out: Path, task: str | None) -> dict:
    from edgedeploy.export import export

    art = export(str(src), out, task=task)
    m = art.manifest
    return {"task": m["source"]["task"], "graphs": list(art.graph_files), "validation_passed": m["validation"]["passed"]}


def run_one(model_type: str, timeout: float, task: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--one", model_type, "--work", tmp, *(("--task", task) if task else ())]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"model_type": model_type, "build": {"ok": False, "error": f"timed out after {timeout:.0f} s"}}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"model_type": model_type, "build": {"ok": False, "error": f"crashed (rc {proc.returncode}): {(err[-1] if err else '')[:240]}"}}
    return json.loads(lines[-1])


def exported(rec: dict) -> bool:
    """edgedeploy exported it: detecting the task (or, where optimum's own inference cannot tell
    an exportable task either, given it), and decoders also with past."""
    auto = rec.get("edgedeploy", {}).get("ok", False)
    given = rec.get("edgedeploy_given_task", {}).get("ok", False) and "(exportable)" not in rec.get("optimum_infers", "")
    return (auto or given) and rec.get("edgedeploy_with_past", {"ok": True})["ok"]


def summary(rows: list[dict]) -> str:
    built = [r for r in rows if r["build"]["ok"]]
    transformers5 = not any("optimum" in r for r in built)  # (--after: the types optimum wrote on transformers 4)
    wrote = built if transformers5 else [r for r in built if r["optimum"]["ok"]]
    ok = [r for r in wrote if exported(r)]
    graphs = [len(next(r[s] for s in ("edgedeploy", "edgedeploy_given_task") if r.get(s, {}).get("ok"))["graphs"]) for r in ok]
    past = [r for r in wrote if "edgedeploy_with_past" in r]
    head = f"built {len(built)} on transformers 5" if transformers5 else f"{len(built)} built; optimum's main_export wrote {len(wrote)}"
    lines = [
        f"{len(rows)} model types; {head}; edgedeploy exported {len(ok)} of those",
        f"  one graph {graphs.count(1)}, three graphs {graphs.count(3)}; decoders with past {sum(exported(r) for r in past)} of {len(past)}",
        f"  task given where neither edgedeploy nor optimum's inference can tell it: {sorted(r['model_type'] for r in ok if not r['edgedeploy']['ok'])}",
    ]
    for r in wrote:
        if not exported(r):
            why = next(r[s]["error"] for s in ("edgedeploy", "edgedeploy_given_task", "edgedeploy_with_past") if s in r and not r[s]["ok"])
            own = "" if transformers5 else f" | optimum's own validation: {r['optimum'].get('own_validation', '-')[:120]}"
            lines.append(f"  refused {r['model_type']}: {why[:160]}{own}")
    lines += [f"  not built on transformers 5 {r['model_type']}: {r['build']['error'][:160]}" for r in rows if transformers5 and not r["build"]["ok"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", type=Path)
    ap.add_argument("--only", default="")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--one"), ap.add_argument("--work", type=Path), ap.add_argument("--task")
    ap.add_argument("--after", type=Path, help="transformers 5: survey the types this transformers 4 survey's optimum wrote")
    ap.add_argument("--summary", action="store_true", help="print the counts of OUT and stop")
    args = ap.parse_args()
    if args.summary:
        print(summary([json.loads(ln) for ln in args.out.read_text().splitlines()]))
        return
    if args.one:
        print(json.dumps(one(args.one, args.work, args.task)))
        return
    done = {json.loads(ln)["model_type"] for ln in args.out.read_text().splitlines()} if args.out.exists() else set()
    if args.after:
        legacy = [json.loads(ln) for ln in args.after.read_text().splitlines()]
        tasks = {r["model_type"]: r["build"]["task"] for r in legacy if r["build"]["ok"] and r["optimum"]["ok"]}
    else:
        tasks = dict.fromkeys(model_types())
    types = [t for t in tasks if t not in done and (not args.only or t in args.only.split(","))]
    for t in types:
        rec = run_one(t, args.timeout, tasks[t])
        with args.out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        steps = [s for s, v in rec.items() if isinstance(v, dict) and s != "build"]
        verdict = ", ".join(f"{s} {'ok' if rec[s]['ok'] else 'FAIL'}" for s in steps) if rec["build"]["ok"] else "build failed"
        print(f"{t}: {verdict}", flush=True)


if __name__ == "__main__":
    main()
