"""``edgedeploy tune``: build candidates on the host, measure fidelity once per candidate on
the same samples, measure latency of every candidate that meets the budget interleaved on the
target (this host or a device over SSH, with the harness's validity rules and a re-run of
unstable results), then search session options for the leader and publish the winner as a
normal artifact whose manifest records the search."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from edgedeploy.bench import bench
from edgedeploy.core.adopt import open_model
from edgedeploy.core.artifact import Artifact, finalize_manifest, is_artifact
from edgedeploy.core.atomic import checkpoint, refuse_inside, staged_directory
from edgedeploy.core.errors import BadInput, InvalidBenchmark, ValidationFailed
from edgedeploy.core.manifest import Fidelity, Lineage, RunSettings, TuneRecord
from edgedeploy.core.options import coerce
from edgedeploy.data import split as data_split
from edgedeploy.device.doctor import resolve_profile
from edgedeploy.device.profiles import load as load_profile
from edgedeploy.export import export
from edgedeploy.quality.accuracy import accuracy, labeled_eval
from edgedeploy.quantize import methods
from edgedeploy.quantize.api import quantize
from edgedeploy.quantize.methods.registry import ENCODER_DECODER, SINGLE
from edgedeploy.targets import target_for
from edgedeploy.tune import final_round, held_out, report, space
from edgedeploy.tune.options import TuneOptions
from edgedeploy.tune.state import PINNED, State

log = logging.getLogger("edgedeploy")
BUILD_SHARE = 0.7  # of --max-minutes: after this, no new candidate is built
EXPLORE = 2  # bases whose neighbours are built
SESSION_KEYS = ("intra_op_threads", "graph_optimization_level", "cpu_mem_arena", "disabled_optimizers", "providers_used")
GENERATION_KEYS = ("ttft_ms", "decode_tokens_per_s", "prefill_tokens_per_s", "inter_token_ms")
SESSION_MARGIN = 0.03  # a session variant replaces the profile's only when it is this much better


class Search:
    def __init__(self, parent: Artifact, opts: TuneOptions, state: State, profile: dict, progress, target, selection: Path | None = None):
        self.parent, self.opts, self.state, self.profile, self.target = parent, opts, state, profile, target
        self.selection = selection or opts.eval_data  # the rows candidates are compared on (the held-out ones are not)
        self.progress = progress or (lambda event, **kw: None)
        self.t0 = time.monotonic()
        self.build_deadline = self.t0 + BUILD_SHARE * opts.max_minutes * 60
        self.task_accuracy = None
        self.float_result = None
        if opts.max_accuracy_drop is not None:
            batches, labels = labeled_eval(parent, self.selection, opts.text_column, opts.label_column, opts.eval_samples)
            self.task_accuracy = (lambda p: accuracy(p, batches, labels), accuracy(parent.model_path, batches, labels))

    # -- building -------------------------------------------------------------------------
    def parents(self) -> dict[str, Path]:
        out = {"plain": self.parent.path}
        m = self.parent.manifest
        fused_ok = m.source.kind == "huggingface" and m.source.family == "transformer" and m.source.path and Path(m.source.path).is_dir()
        already = m.export is not None and m.export.fused
        if fused_ok and not already and not self.parent.adopted and not m.is_decoder:
            out["fused"] = self.state.root / "fused"
        return out

    def _fused(self, path: Path) -> Path:
        if not is_artifact(path):
            src = self.parent.manifest.source
            log.info("tune: exporting the fused parent (onnxruntime.transformers fusions)")
            # SkipLayerNormalization left unfused: ORT fuses it again online unless the session
            # variant that disables SkipLayerNormFusion is measured faster (space.session_variants)
            export(src.path, path, task=src.task, optimize=True, no_fusion=["skip_layer_norm"], force=True)
        return path

    def time_left_to_build(self) -> bool:
        return time.monotonic() < self.build_deadline

    def build(self, cand: dict, parents: dict) -> dict:
        rec = self.state.get(cand["id"])
        if rec and rec.get("status") in ("built", "failed") and (rec["status"] == "failed" or is_artifact(self.state.candidate_dir(cand["id"]))):
            self.progress("built", rec=rec, cached=True)
            return rec
        if not self.time_left_to_build():
            return self.state.record(cand, status="skipped", error="out of time (--max-minutes)")
        src = parents[cand["parent"]]
        if cand["parent"] == "fused":
            src = self._fused(src)
        o = self.opts
        t = time.monotonic()
        kw = dict(cand["settings"])
        if (
            methods.get(cand["method"]).calibration != "none"
            or any(k in kw for k in ("smooth_quant", "min_mean_cosine", "min_worst_cosine", "max_accuracy_drop"))
        ) and not self.parent.is_seq2seq:  # an encoder-decoder's graphs are not calibrated (quantize/graphs.py)
            kw.update(calib_data=o.calib_data, calib_samples=o.calib_samples)
        if "max_accuracy_drop" in kw:
            kw["label_column"] = o.label_column
        try:
            art = quantize(
                src,
                self.state.candidate_dir(cand["id"]),
                cand["method"],
                eval_data=self.selection,
                eval_samples=o.eval_samples,
                text_column=o.text_column,
                profile=self.profile["name"],
                force=True,
                **kw,
            )
        except (ValidationFailed, BadInput) as exc:
            log.info("tune: %s failed: %s", cand["label"], exc)
            rec = self.state.record(cand, status="failed", error=str(exc), build_s=time.monotonic() - t)
            self.progress("built", rec=rec)
            return rec
        f, q = art.manifest.fidelity, art.manifest.quantization
        rec = {
            "status": "built",
            "mean_cosine": f.mean_cosine,
            "worst_cosine": f.worst_cosine,
            "size_bytes": q.model_bytes,
            "nodes_kept_float": len(q.nodes_kept_float),
            "build_s": time.monotonic() - t,
        }
        if self.task_accuracy:
            fn, parent_acc = self.task_accuracy
            rec["accuracy"] = fn(art.model_path)
            rec["accuracy_drop"] = parent_acc - rec["accuracy"]
        rec = self.state.record(cand, **rec)
        self.progress("built", rec=rec)
        checkpoint()
        return rec

    # -- budget -----------------------------------------------------------------------------
    def misses(self, rec: dict) -> list[str]:
        """What ``rec`` misses of the budget, each as 'what: got vs limit'."""
        o, out = self.opts, []
        if rec.get("status") != "built":
            return [rec.get("error") or rec.get("status", "not built")]
        if o.min_mean_cosine is not None and rec["mean_cosine"] < o.min_mean_cosine:
            out.append(f"mean cosine {rec['mean_cosine']:.4f} < {o.min_mean_cosine}")
        if o.min_worst_cosine is not None and rec["worst_cosine"] < o.min_worst_cosine:
            out.append(f"worst cosine {rec['worst_cosine']:.4f} < {o.min_worst_cosine}")
        if o.max_accuracy_drop is not None and rec["accuracy_drop"] > o.max_accuracy_drop + 1e-12:
            out.append(f"accuracy drop {rec['accuracy_drop']:.4f} > {o.max_accuracy_drop}")
        if o.max_size_mb is not None and rec["size_bytes"] / 1e6 > o.max_size_mb:
            out.append(f"size {rec['size_bytes'] / 1e6:.1f} MB > {o.max_size_mb} MB")
        return out

    def shortfall(self, rec: dict) -> float:
        o = self.opts
        if rec.get("status") != "built":
            return float("inf")
        gaps = [
            (o.min_mean_cosine - rec["mean_cosine"]) if o.min_mean_cosine is not None else 0,
            (o.min_worst_cosine - rec["worst_cosine"]) if o.min_worst_cosine is not None else 0,
            (rec["accuracy_drop"] - o.max_accuracy_drop) if o.max_accuracy_drop is not None else 0,
            (rec["size_bytes"] / 1e6 / o.max_size_mb - 1) if o.max_size_mb is not None else 0,
        ]
        return sum(max(0.0, g) for g in gaps)

    # -- measuring --------------------------------------------------------------------------
    def measure(self, key: str, entries: list[tuple[str, Path, dict | None]]) -> dict:
        """One interleaved round on the target: [(name, artifact path, session settings)] ->
        {name: result}; cached in the state by ``key`` (a resumed search does not re-measure)."""
        done = self.state.doc["rounds"].get(key)
        if done:
            return done
        self.progress("measuring", n=len(entries), round=key)
        o = self.opts
        mopts = o.model_copy(update={"profile": self.profile["name"]})
        models = {"names": [e[0] for e in entries], "runs": [e[2] for e in entries]}
        doc = bench([e[1] for e in entries], mopts, target=self.target, models=models)
        results = {r["name"]: _summary(r) for r in doc["results"]}
        unstable = [n for n, r in results.items() if not r["stable"]]
        if unstable:  # the harness's rule: an unstable result is measured again, with the others for company
            log.info("tune: re-measuring unstable result(s): %s", ", ".join(unstable))
            again = bench([e[1] for e in entries], mopts, target=self.target, models=models)
            for r in again["results"]:
                if r["name"] in unstable:
                    results[r["name"]] = {**_summary(r), "first_round": results[r["name"]], "re_run": True}
        remote = doc.get("remote") or {}
        round_ = {"results": results, "environment": doc.get("environment"), "remote": remote.get("host"), "model_cache": remote.get("model_cache")}
        self.state.doc["rounds"][key] = round_
        self.state.save()
        checkpoint()
        return round_

    def measure_feasible(self, stage: str, recs: list[dict]) -> dict[str, dict]:
        """Measure ``recs`` with the float parent in one round: {candidate id: result}."""
        entries = [("float (parent)", self.parent.path, None)] + [(r["label"], self.state.candidate_dir(r["id"]), None) for r in recs]
        round_ = self.measure(f"{stage}:" + ",".join(sorted(r["id"] for r in recs)), entries)
        self.float_result = round_["results"]["float (parent)"]
        return {r["id"]: round_["results"][r["label"]] for r in recs}

    def score(self, r: dict, size: int) -> float:
        return report.objective_value(r, size, self.opts.objective)  # a p90 cut short by --duration ranks last


def _text(v) -> str:
    return "+".join(map(str, v)) if isinstance(v, list) else str(v)


def _summary(r: dict) -> dict:
    return {
        "latency_ms": {k: r["latency_ms"][k] for k in ("p50", "p90", "p99", "mean", "cv")},
        "throughput_per_s": r.get("throughput_per_s"),
        "stable": r["stable"],
        "samples": r["samples"],
        "session": {k: (r.get("session") or {}).get(k) for k in SESSION_KEYS},
    } | ({"generation": {k: r["generation"].get(k) for k in GENERATION_KEYS}} if r.get("generation") else {})


def tune(artifact, out: Path, options: TuneOptions | None = None, *, force: bool = False, progress=None, **settings) -> dict:
    """Search ``artifact``'s quantization and session settings; publish the winner at ``out``.
    Returns the search document (also written as ``out/tune.json``)."""
    opts = options if options is not None else coerce(TuneOptions, settings, "tune")
    out = Path(out)
    parent = open_model(artifact)
    _check(parent, opts, out, force)
    target = target_for(opts.host, opts)  # over SSH each model goes up once, then the device's cache (unless --no-device-cache)
    profile = load_profile(target.profile_name(resolve_profile(opts.profile)))
    pinned = {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.recorded().items() if k in PINNED}
    state = State.open(out, parent.digest, pinned, opts.resume, force)
    split = _split(opts, state)
    s = Search(parent, opts, state, profile, progress, target, split["selection"] if split else None)
    parents, budget = s.parents(), opts.budget()
    have_calib = opts.calib_data is not None and not parent.is_seq2seq
    kind = ENCODER_DECODER if parent.is_seq2seq else SINGLE
    bases, skipped = space.bases(profile, [m for m in opts.methods if kind in methods.get(m).graphs], have_calib, "fused" in parents)
    skipped += [f"{m}: it does not quantize an encoder-decoder's graphs" for m in opts.methods if kind not in methods.get(m).graphs]
    s.progress("plan", bases=len(bases), skipped=skipped)
    built = [s.build(c, parents) for c in bases]
    # stage 2: the one-setting neighbours of the fastest bases within budget (of the closest when none is)
    good = [(c, r) for c, r in zip(bases, built) if not s.misses(r)]
    if good:
        first = s.measure_feasible("bases", [r for _, r in good])
        explore = [c for c, r in sorted(good, key=lambda cr: s.score(first[cr[1]["id"]], cr[1]["size_bytes"]))[:EXPLORE]]
    else:
        explore = sorted(bases, key=lambda c: s.shortfall(s.state.get(c["id"])))[:1]
    for b in explore:
        for c in space.neighbours(b, profile):
            s.build(c, parents)
    # stage 3, only when nothing meets the budget yet: keep sensitivity-ranked nodes in float (one graph only)
    if not any(not s.misses(state.get(i)) for i in state.doc["order"]) and not parent.is_seq2seq:
        for c in filter(None, (space.with_float_nodes(b, budget) for b in sorted(bases, key=lambda c: s.shortfall(s.state.get(c["id"])))[:EXPLORE])):
            s.build(c, parents)
    recs = [state.get(i) for i in state.doc["order"]]
    feasible = [r for r in recs if not s.misses(r)]
    if not feasible:
        closest = min(recs, key=s.shortfall) if recs else None
        _write_reports(state.root, s, recs, None, None, skipped, budget)
        what = f"closest: {closest['label']} ({'; '.join(s.misses(closest))})" if closest else "no candidate was built"
        raise ValidationFailed(f"no candidate meets the budget; {what}; reports in {state.root}")
    # the final comparison: every candidate within budget and the float parent, in one interleaved round
    final = s.measure_feasible("candidates", feasible)
    for r in feasible:
        r["measured"] = final[r["id"]]
    leader = min(feasible, key=lambda r: (s.score(r["measured"], r["size_bytes"]), r["size_bytes"]))
    session_choice, session_round = {}, None
    if opts.session_search and opts.objective != "size":  # the leader in each session variant, one interleaved round
        leader, session_choice, session_round = _session_search(s, opts, profile, leader)
    leader, final = final_round.of_record(s, leader, session_choice, parents)
    doc = _write_reports(state.root, s, recs, leader, {"options": session_choice, "round": session_round, "final": final}, skipped, budget)
    held, winner_result = _held_out(s, leader, doc, split), doc["winner"]["measured"]
    if not winner_result["stable"] and opts.require_stable:
        raise InvalidBenchmark(
            f"the winner {leader['label']} stayed unstable (CV {winner_result['latency_ms']['cv']:.0%}) after a re-run; reports in {state.root}"
        )
    _publish(state, parent, leader, doc, out, force or opts.resume, held)
    state.remove()
    doc["artifact"] = str(out)
    return doc


def _check(parent: Artifact, opts: TuneOptions, out: Path, force: bool) -> None:
    """Exit 2 before any work for what the search cannot do with these options."""
    text = "input_ids" in parent.input_names
    if parent.is_seq2seq:
        _check_seq2seq(parent, opts, text)
    else:
        parent.require_single_graph("tune")
    refuse_inside(out, parent.path, "the parent artifact")
    if opts.eval_data is None and opts.calib_data is None and (text or not parent.is_seq2seq):
        raise BadInput("tune measures fidelity on real samples: give --data (and --calib-data for static candidates)")
    if out.exists() and not force and not opts.resume:
        raise BadInput(f"{out}: exists; pass --force to replace it")


def _session_search(s: Search, opts: TuneOptions, profile: dict, leader: dict) -> tuple[dict, dict, dict]:
    """(the leader with its measurement in the chosen session, the session options chosen, the
    round): the leader under each session variant, in one interleaved round."""
    variants = space.session_variants(s.target.run_settings(profile), s.target.cores(profile))
    names = [leader["label"] + (" | " + ",".join(f"{k}={_text(x)}" for k, x in v.items()) if v else "") for v in variants]
    session_round = s.measure(f"session:{leader['id']}", [(n, s.state.candidate_dir(leader["id"]), v or None) for n, v in zip(names, variants)])
    scores = {n: s.score(session_round["results"][n], leader["size_bytes"]) for n in names}
    best = min(zip(names, variants), key=lambda nv: scores[nv[0]])
    # the profile's own session stays unless another wins by more than the host's noise
    choice = best[1] if scores[best[0]] < scores[names[0]] - SESSION_MARGIN * abs(scores[names[0]]) else {}
    chosen = best[0] if choice else names[0]
    return {**leader, "session_measured": session_round["results"][chosen]}, choice, session_round


def _check_seq2seq(parent: Artifact, opts: TuneOptions, text: bool) -> None:
    """What an encoder-decoder's tune needs: generation measured, no labels, text only for text encoders."""
    if not opts.generate:
        raise BadInput(f"{parent.path}: an encoder-decoder is tuned on generation: add --generate (and --objective decode or ttft)")
    if opts.max_accuracy_drop is not None:
        raise BadInput("--max-accuracy-drop scores labels; an encoder-decoder has none (budget --min-mean-cosine, measured by generation)")
    if not text and (opts.eval_data or opts.calib_data):
        raise BadInput(f"{parent.path}: its encoder takes {parent.input_names[0]}, not text; leave --data out (fidelity on random inputs)")


def _split(opts: TuneOptions, state: State) -> dict | None:
    """--data split into the rows candidates are compared on and the rows the winner is reported
    on (data/split.py); None without --data (fidelity on the calibration rows, said in tune.json)."""
    if opts.eval_data is None:
        return None
    columns = (opts.text_column,) + ((opts.label_column,) if opts.max_accuracy_drop is not None else ())
    return data_split.split(opts.eval_data, columns, opts.eval_samples, state.root / "split")


def _held_out(s: Search, leader: dict, doc: dict, split: dict | None) -> dict | None:
    """The winner on the held-out rows, recorded in the reports; exit 1 when it misses the budget there."""
    doc["split"] = split["record"] if split else {"held_out_rows": None, "why": "no --data: fidelity on the calibration rows only"}
    if split is None:
        return None
    held = held_out.measure(s.parent, Artifact.load(s.state.candidate_dir(leader["id"])), split["held_out"], s.opts)
    doc["winner"]["held_out"] = {k: v for k, v in held.items() if k != "fidelity"}
    report.write(doc, s.state.root)
    held_out.check(leader, held, s.misses, split["record"])
    return held


def _write_reports(root: Path, s: Search, recs, leader, session, skipped, budget) -> dict:
    doc = report.document(s, recs, leader, session, skipped, budget)
    report.write(doc, root)
    return doc


def _publish(state: State, parent: Artifact, leader: dict, doc: dict, out: Path, force: bool, held: dict | None) -> None:
    src = state.candidate_dir(leader["id"])
    art = Artifact.load(src)
    with staged_directory(out, force=force, is_artifact=is_artifact) as stage:
        for name in art.manifest.files:
            if name in report.FILES:
                continue
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / name, stage / name, follow_symlinks=False)
        report.write(doc, stage)
        manifest = art.manifest.derived()
        # the tuned artifact's parent is the one given to tune (a fused export it made lived in the search state only)
        via = "the fused export of the parent" if leader["parent"] == "fused" else None
        manifest.lineage = Lineage(parent=parent.digest, parent_path=str(parent.path), step=f"tune:{leader['method']}", via=via)
        manifest.tune = TuneRecord.model_validate(report.manifest_record(doc))
        if held is not None:  # the figures of record: rows the search never compared candidates on
            manifest.tune.selection_fidelity = manifest.fidelity
            rows = doc["split"]["held_out_rows"]
            inputs = {"source": doc["split"]["file"], "rows": rows, "kind": "held-out rows of --data"}
            manifest.fidelity = Fidelity.model_validate({**held["fidelity"], "inputs": inputs, "reference": parent.digest})
        if doc["winner"]["session"]:  # what was measured is what `bench` and the device harness run
            manifest.run = RunSettings.model_validate(doc["winner"]["session"])
        finalize_manifest(stage, manifest)
        checkpoint()
