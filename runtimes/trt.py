"""TensorRT per model: engine and timing caches that outlive the run, and a float reference that
stays in FP32. Device-side: standard library and onnxruntime.

A TensorRT engine takes minutes to build on a Jetson. The profile's relative cache path lived in
the run's work folder, which is removed after every run, so each bench and tune built every
engine again. Here the caches go under the job's ``engine_cache_root`` (beside the device's
model cache), in a folder keyed by the model's digest, the TensorRT options and the onnxruntime
version: a changed model, option or runtime gets a fresh engine, the same ones reuse theirs.
"""

from __future__ import annotations

import hashlib
import json
import os

TRT = "TensorrtExecutionProvider"
PATH_KEYS = ("trt_engine_cache_path", "trt_timing_cache_path")


def for_model(run: dict, model: dict, ort_version: str) -> dict:
    """``run`` with the TensorRT options this model needs: FP16 off for a float reference
    (``precision: fp32``), the caches in the model's keyed folder."""
    given = (run.get("provider_options") or {}).get(TRT)
    if not given:
        return run
    trt = dict(given)
    if model.get("precision") == "fp32":
        trt["trt_fp16_enable"] = False
    folder = cache_folder(model, trt, ort_version)
    if folder is not None and (trt.get("trt_engine_cache_enable") or trt.get("trt_timing_cache_enable")):
        os.makedirs(folder, exist_ok=True)
        trt.update({k: folder for k in PATH_KEYS})
    return {**run, "provider_options": {**run["provider_options"], TRT: trt}}


def cache_folder(model: dict, trt: dict, ort_version: str) -> str | None:
    root, digest = model.get("engine_cache_root"), model.get("artifact_digest")
    if not root or not digest:
        return None
    options = {k: v for k, v in sorted(trt.items()) if k not in PATH_KEYS}
    key = hashlib.sha256(json.dumps([digest, options, ort_version], sort_keys=True, default=str).encode()).hexdigest()[:24]
    return os.path.join(root, key)
