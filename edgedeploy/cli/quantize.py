from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option


@click.command("quantize")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path))
@click.option("--method", required=True, help="dynamic | static | fp16 | int4")
@click.option("--profile", help="Device profile whose quantization preset chooses the defaults.")
@click.option("--weight-type", type=click.Choice(["int8", "uint8"]))
@click.option("--activation-type", type=click.Choice(["int8", "uint8"]))
@click.option("--per-channel/--per-tensor", default=None)
@click.option("--reduce-range/--no-reduce-range", default=None)
@click.option("--format", "quant_format", type=click.Choice(["QDQ", "QOperator"]))
@click.option("--calib-data", type=click.Path(path_type=Path), help="Calibration data: TSV/CSV/JSONL text or .npz of inputs.")
@click.option("--calib-samples", type=int, default=128, show_default=True)
@click.option("--calib-method", type=click.Choice(["minmax", "entropy", "percentile"]))
@click.option("--random-calibration", is_flag=True, help="Calibrate on random inputs (recorded as a warning in the manifest).")
@click.option("--text-column", default="text", show_default=True)
@click.option("--eval-data", type=click.Path(path_type=Path), help="Real samples for fidelity (default: the calibration data).")
@click.option("--eval-samples", type=int, default=64, show_default=True)
@click.option("--exclude", multiple=True, help="Keep in float: node name, op type, glob or PyTorch module name. Repeatable.")
@click.option("--block-size", type=int, help="int4 block size (16-256).")
@click.option("--symmetric/--asymmetric", default=None, help="int4 symmetric or asymmetric blocks.")
@click.option("--accuracy-level", type=int, help="int4 MatMulNBits accuracy_level (0-4).")
@click.option("--int4-embeddings/--no-int4-embeddings", default=None, help="Also block-quantize embedding Gathers (int4).")
@click.option("--op-block-list", multiple=True, help="fp16: extra op types to keep in float32.")
@click.option("--min-cosine", type=float, help="Accuracy-aware: keep the most sensitive nodes in float until mean cosine >= this.")
@click.option("--min-worst-cosine", type=float, help="Accuracy-aware: also require the worst sample's cosine >= this.")
@click.option("--max-drop", type=click.FloatRange(0, 1), help="Accuracy-aware: max task-accuracy drop vs the parent on labeled --eval-data.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--int4-sensitive-8bit", "sensitive_8bit", type=int, help="int4: keep the N most sensitive MatMuls (measured) at 8-bit (default 2).")
@click.option("--embedding-block-size", type=int, help="int4: block size for embedding tables (default 64).")
@click.option("--force", is_flag=True)
@json_option
def command(artifact, out, method, profile, weight_type, activation_type, per_channel, reduce_range, quant_format, calib_data, calib_samples,
            calib_method, random_calibration, text_column, eval_data, eval_samples, exclude, block_size, symmetric, accuracy_level,
            int4_embeddings, op_block_list, min_cosine, min_worst_cosine, max_drop, label_column, sensitive_8bit, embedding_block_size, force, as_json):
    """Quantize ARTIFACT with ONNX Runtime into a new artifact (the parent is never modified)."""
    from edgedeploy.quantize import quantize

    overrides = {"weight_type": weight_type, "activation_type": activation_type, "per_channel": per_channel, "reduce_range": reduce_range,
                 "format": quant_format, "calibration_method": calib_method, "block_size": block_size, "symmetric": symmetric,
                 "accuracy_level": accuracy_level, "embeddings": int4_embeddings, "op_block_list": op_block_list or None,
                 "sensitive_8bit": sensitive_8bit, "embedding_block_size": embedding_block_size}
    art = quantize(artifact, out, method, profile=profile, overrides=overrides, calib_data=calib_data, calib_samples=calib_samples,
                   random_calibration=random_calibration, text_column=text_column, eval_data=eval_data, eval_samples=eval_samples,
                   exclude=exclude, force=force, min_cosine=min_cosine, min_worst_cosine=min_worst_cosine, max_drop=max_drop, label_column=label_column)
    q, f = art.manifest["quantization"], art.manifest["fidelity"]
    if as_json:
        emit_json({"artifact": str(art.path), "quantization": q, "fidelity": f})
        return
    click.echo(f"{method} -> {art.path}: {q['model_bytes'] / 1e6:.1f} MB ({q['compression_ratio']:.2f}x smaller than {q['parent_model_bytes'] / 1e6:.1f} MB)")
    line = f"  fidelity on {f['samples']} samples: mean cosine {f['mean_cosine']:.4f}, min {f['min_cosine']:.4f}, max abs diff {f['max_abs_diff']:.3g}"
    if "top1_agreement" in f:
        line += f", top-1 agreement {f['top1_agreement']:.1%}"
    click.echo(line)
    search = q.get("accuracy_search")
    if search and "accuracy" in search["reached"]:
        click.echo(f"  task accuracy {search['reached']['accuracy']:.4f} vs parent {search['budget']['parent_accuracy']:.4f} "
                   f"(drop {search['reached']['accuracy_drop']:.4f}, budget {search['budget']['max_accuracy_drop']})")
    if q["nodes_kept_float"]:
        click.echo(f"  kept in float: {len(q['nodes_kept_float'])} node(s)")
