"""ONNX export with a parity check, and int8 quantisation with an agreement check.

`export_onnx` traces the model (input `image`, dynamic batch, opset 17), then runs the exported graph in
onnxruntime on `cvcore.artifacts.preprocess(sample_images, sidecar)` (what the prediction route feeds it) and
raises ExportMismatch when any output differs from torch by more than `tolerance`. Detection reuses it by
passing its own `output_names`.

`quantize_int8` writes a QDQ static-quantised copy calibrated on the export's sample batch (falling back
to dynamic weight quantisation), checks it loads and agrees top-1 with the float graph on that batch, and
raises when it does not.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cvcore import artifacts

log = logging.getLogger(__name__)
OPSET = 17
TOLERANCE = 1e-4
INPUT_NAME = "image"
_SAMPLES: dict[
    str, np.ndarray
] = {}  # exported path -> the preprocessed sample batch (quantisation reuses it)


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the torch model (or the quantised one the float one)."""


def session(path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _as_list(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


def export_onnx(
    model: torch.nn.Module,
    sidecar: artifacts.ModelSidecar,
    path,
    sample_images,
    output_names=("probabilities",),
    tolerance: float = TOLERANCE,
    opset: int = OPSET,
) -> dict:
    """Export `model` to `path`; returns {"max_abs_diff", "outputs", "opset"}. Raises ExportMismatch."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    output_names = list(output_names)
    if not sample_images:
        raise ValueError("export_onnx needs at least one sample image to check the exported graph")
    sample = artifacts.preprocess(list(sample_images), sidecar)
    was_training = model.training
    model = model.cpu().eval()
    x = torch.from_numpy(sample)
    with torch.no_grad():
        expected = [t.detach().float().numpy() for t in _as_list(model(x))]  # a forward pass first
    if len(expected) != len(output_names):
        raise ValueError(f"the model gives {len(expected)} outputs for output names {output_names}")
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    if was_training:
        model.train()
    import onnx

    onnx.checker.check_model(str(path))
    got = session(path).run(output_names, {INPUT_NAME: sample})
    diff = 0.0
    for name, e, g in zip(output_names, expected, got, strict=True):
        if e.shape != g.shape:
            raise ExportMismatch(f"output {name}: onnxruntime shape {g.shape} != torch {e.shape}")
        if e.size:
            diff = max(diff, float(np.max(np.abs(e.astype(np.float64) - g.astype(np.float64)))))
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportMismatch(f"onnxruntime differs from torch by {diff:.3g} (> {tolerance:g})")
    _SAMPLES[str(path.resolve())] = sample
    log.info("exported %s (max abs diff %.2g)", path, diff)
    return {"max_abs_diff": diff, "outputs": output_names, "opset": opset}


class _Reader:
    def __init__(self, batch: np.ndarray, name: str):
        self._rows = iter([batch[i : i + 1] for i in range(len(batch))])
        self._name = name

    def get_next(self):
        row = next(self._rows, None)
        return None if row is None else {self._name: row}

    def rewind(self):  # some onnxruntime versions call it
        pass


def _top1(out: np.ndarray) -> np.ndarray:
    return out.reshape(out.shape[0], -1).argmax(axis=1)


def quantize_int8(
    src,
    dst,
    sample: np.ndarray | None = None,
    output_name: str | None = None,
    check: str | None = "top1",
    min_agreement: float = 1.0,
) -> dict:
    """Quantise `src` to int8 at `dst`. `sample` is a preprocessed input batch (default: the one
    export_onnx checked `src` with). check="top1": argmax of `output_name` (default: the first output) must
    agree on at least `min_agreement` of the sample rows; None skips it (loading is always checked)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    src, dst = Path(src), Path(dst)
    if sample is None:
        sample = _SAMPLES.get(str(src.resolve()))
    float_session = session(src)
    input_name = float_session.get_inputs()[0].name
    output_name = output_name or float_session.get_outputs()[0].name
    attempts = []
    if sample is not None and len(sample):
        attempts.append(
            (
                "static",
                lambda: quantize_static(
                    str(src),
                    str(dst),
                    _Reader(sample, input_name),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax,
                ),
            )
        )
    attempts.append(("dynamic", lambda: quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)))
    problems = []
    for kind, run in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run()
            q = session(dst)
        except Exception as exc:
            problems.append(f"{kind}: {exc}")
            continue
        if sample is None or check is None:
            return {"kind": kind, "agreement": None, "bytes": os.path.getsize(dst)}
        want = _top1(float_session.run([output_name], {input_name: sample})[0])
        got = _top1(q.run([output_name], {input_name: sample})[0])
        agreement = float(np.mean(want == got))
        if agreement >= min_agreement:
            return {"kind": kind, "agreement": agreement, "bytes": os.path.getsize(dst)}
        problems.append(f"{kind}: top-1 agrees on {agreement:.0%} of the sample")
    if dst.exists():
        dst.unlink()
    raise ExportMismatch("int8 quantisation failed: " + "; ".join(problems))
