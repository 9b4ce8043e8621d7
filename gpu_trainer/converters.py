"""Converters from the float ONNX model to other runtimes, each checked against the ONNX model's outputs
on real images (the iteration's own training images) before it ships.

    to_openvino(onnx_path, out_dir, sample, task) -> agreement     writes model.xml + model.bin (OpenVINO IR)
    to_savedmodel(onnx_path, out_dir, sample, task) -> agreement   writes saved_model/ (TensorFlow SavedModel)
    to_tflite(onnx_path, out_dir, sample, task) -> agreement       writes model.tflite (TensorFlow Lite)

The TensorFlow ones go through gpu_trainer/onnx_tf.py (classifier graphs; a detector is refused before a job
is queued, cvcore/exports.py). Each is checked by loading what was written, as a user would.

The agreement ({"samples", "max_abs_diff", "top1_agreement", ...}) goes into the export's status note and
the sidecar in its zip. An export that disagrees (any output further than TOLERANCE from ONNX, or for a
classifier a different top-1 on any sample) raises ExportMismatch with the figures, and the export is
Failed with that reason. Converters are imported lazily: they live in the trainer image only.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cvcore import artifacts
from cvcore.boxes import postprocess

from .export import ExportMismatch, session

SIGNATURE = "serving_default"
TOLERANCE = 1e-3  # FP32 kernels differ in summation order, not in results
FLOOR = 0.05  # detections compared: those a prediction would show (scoring.REGION_FLOOR)


def agreement(reference: dict[str, np.ndarray], converted: dict[str, np.ndarray], task: str) -> dict:
    """Compare a converted model's outputs with ONNX's on the same batch; raise ExportMismatch."""
    worst = {
        name: float(np.max(np.abs(np.asarray(converted[name], np.float64) - np.asarray(ref, np.float64))))
        if np.size(ref)
        else 0.0
        for name, ref in reference.items()
    }
    found: dict[str, Any] = {
        "samples": int(next(iter(reference.values())).shape[0]),
        "max_abs_diff": max(worst.values()),
        "per_output": worst,
        "tolerance": TOLERANCE,
    }
    if task == artifacts.DETECTION:  # candidates may swap places on near-ties: compare the detections
        found.update(_same_detections(reference, converted))
        return found
    ref, got = reference["probabilities"], converted["probabilities"]
    found["top1_agreement"] = float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1)))
    if found["top1_agreement"] < 1.0:
        raise ExportMismatch(
            f"top-1 agrees with ONNX on {found['top1_agreement']:.0%} of {found['samples']} real images"
        )
    if found["max_abs_diff"] > TOLERANCE:
        raise ExportMismatch(
            f"outputs differ from ONNX by up to {found['max_abs_diff']:.2e} (more than "
            f"{TOLERANCE:g}) on {found['samples']} real images: {worst}"
        )
    return found


def _same_detections(reference: dict, converted: dict) -> dict:
    """Each image's detections above FLOOR (after the prediction route's NMS) must pair up one to one: same
    tag, box and score within TOLERANCE (one scoring within TOLERANCE of the floor may fall either side)."""
    pairs = diffs_score = diffs_box = 0.0
    count = unmatched = 0
    for i in range(len(reference["scores"])):
        want = postprocess(
            reference["boxes"][i], reference["scores"][i], reference["labels"][i], min_score=FLOOR
        )
        got = postprocess(
            converted["boxes"][i], converted["scores"][i], converted["labels"][i], min_score=FLOOR
        )
        free = list(got)
        for label, score, *box in want:
            count += 1
            match = next(
                (
                    g
                    for g in free
                    if g[0] == label
                    and abs(g[1] - score) <= TOLERANCE
                    and max(abs(a - b) for a, b in zip(g[2:], box, strict=True)) <= TOLERANCE
                ),
                None,
            )
            if match is None:
                unmatched += score > FLOOR + TOLERANCE
                continue
            free.remove(match)
            pairs += 1
            diffs_score = max(diffs_score, abs(match[1] - score))
            diffs_box = max(diffs_box, max(abs(a - b) for a, b in zip(match[2:], box, strict=True)))
        unmatched += sum(1 for g in free if g[1] > FLOOR + TOLERANCE)
    found = {
        "detections": count,
        "matched": int(pairs),
        "max_score_diff": diffs_score,
        "max_box_diff": diffs_box,
        "floor": FLOOR,
    }
    if unmatched:
        raise ExportMismatch(
            f"{unmatched} detections above {FLOOR} have no counterpart within {TOLERANCE:g} "
            f"(of {count} from ONNX on the real images)"
        )
    return found


def _reference(onnx_path: Path, sample: np.ndarray) -> dict[str, np.ndarray]:
    s = session(onnx_path)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {s.get_inputs()[0].name: sample}), strict=True))


def to_openvino(onnx_path: Path, out_dir: Path, sample: np.ndarray, task: str) -> dict:
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=False)
    # f32 on purpose: on CPUs with bf16 units OpenVINO would otherwise compute in bf16 (faster, ~1e-2 off)
    compiled = ov.Core().compile_model(str(out_dir / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = _reference(onnx_path, sample)
    converted = {}
    for name in reference:
        rows = [compiled(sample[i : i + 1])[compiled.output(name)] for i in range(len(sample))]
        converted[name] = np.concatenate(rows, axis=0)
    return {**agreement(reference, converted, task), "runtime": f"openvino {ov.__version__.split('-')[0]}"}


def _savedmodel(onnx_path: Path, directory: Path) -> None:
    import tensorflow as tf

    from .onnx_tf import to_module

    module = to_module(onnx_path)
    tf.saved_model.save(module, str(directory), signatures={SIGNATURE: module.serve})


def to_savedmodel(onnx_path: Path, out_dir: Path, sample: np.ndarray, task: str) -> dict:
    import tensorflow as tf

    directory = out_dir / "saved_model"
    _savedmodel(onnx_path, directory)
    serve = tf.saved_model.load(str(directory)).signatures[SIGNATURE]
    reference = _reference(onnx_path, sample)
    got = serve(image=tf.constant(sample))
    converted = {name: got[name].numpy() for name in reference}
    return {**agreement(reference, converted, task), "runtime": f"tensorflow {tf.__version__}"}


def to_tflite(onnx_path: Path, out_dir: Path, sample: np.ndarray, task: str) -> dict:
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    _savedmodel(onnx_path, out_dir / "saved_model")
    (out_dir / "model.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_saved_model(str(out_dir / "saved_model")).convert()
    )
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_path=str(out_dir / "model.tflite"), num_threads=2).get_signature_runner(SIGNATURE)
    reference = _reference(onnx_path, sample)
    rows = [run(image=sample[i : i + 1]) for i in range(len(sample))]  # one image at a time, as on a phone
    converted = {name: np.concatenate([r[name] for r in rows], axis=0) for name in reference}
    return {
        **agreement(reference, converted, task),
        "runtime": f"litert {metadata.version('ai-edge-litert')}",
    }
