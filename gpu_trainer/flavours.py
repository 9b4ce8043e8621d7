"""The export flavours made from a trained iteration's ONNX graph: int8 (settled at training for detectors,
which refuse it, and on demand for classifiers) and the conversions (converters.py) an ExportJob asks for.
Each is checked on real images of the iteration's dataset and settled by a status note written last.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cvcore import artifacts, exports, layout, messages

from .dataset import SAMPLES, load_dataset, load_images
from .errors import JobFailed
from .store import TrainerStore

log = logging.getLogger(__name__)


def write_int8(
    store: TrainerStore, project_id: str, iteration_id: str, task: str, model_path: Path, sample=None
) -> dict:
    """The ONNXInt8 flavour: quantise, check, upload, and say how it went in MODEL_INT8_STATUS (written last).
    A model that loses accuracy when quantised ships without it, and the status says why."""
    from .export import ExportMismatch, quantize_int8

    if task == artifacts.DETECTION:
        status = {
            "status": "Failed",
            "reason": "int8 quantisation of detectors is not supported yet (it breaks "
            "the box decoding); export ONNX12",
        }
    else:
        target = model_path.with_name(layout.MODEL_INT8_ONNX)
        try:
            found = quantize_int8(model_path, target, sample=sample)
            store.write_artifact(
                project_id,
                iteration_id,
                layout.MODEL_INT8_ONNX,
                target.read_bytes(),
                "application/octet-stream",
            )
            status = {"status": "Done", **found}
        except ExportMismatch as exc:
            log.warning("no int8 flavour for %s: %s", iteration_id, exc)
            status = {"status": "Failed", "reason": f"{exc}; export ONNX12 instead"}
    status["at"] = messages.now_iso()
    store.write_json(project_id, iteration_id, layout.MODEL_INT8_STATUS, status)
    return status


def export_target(job: messages.ExportJob) -> tuple[exports.Target, str]:
    """The target an ExportJob asks for and the name of its status note. The API queues only targets the
    trainer makes, and each has a note, so anything else is a malformed job."""
    target = exports.find(job.platform, job.flavor)
    if target is None or target.status is None:
        raise ValueError(f"export job for {job.platform}/{job.flavor}: not a target the trainer makes")
    return target, target.status


def run_export(job: messages.ExportJob, store: TrainerStore) -> dict:
    """An export asked for through the API (ExportJob): the int8 flavour, or a conversion (converters.py),
    of a completed iteration, checked on the first images of its dataset. Idempotent: a settled target is
    not made again. Returns the status note it wrote (Done, or Failed with the reason)."""
    p, it = job.project_id, job.iteration_id
    target, status = export_target(job)
    status_name = layout.iteration_artifact(p, it, status)
    if store.exists(status_name):
        return json.loads(store.read_model_blob(status_name))
    sidecar = artifacts.ModelSidecar.from_json(
        json.loads(store.read_model_blob(layout.iteration_artifact(p, it, layout.MODEL_SIDECAR)))
    )
    sample = None
    try:
        m = load_dataset(store, p, it)
        with ThreadPoolExecutor(4) as pool:
            images, _ = load_images(store, m, pool, {im["id"] for im in m.images[:SAMPLES]})
        if images:
            sample = artifacts.preprocess(list(images.values()), sidecar)
    except JobFailed as exc:  # int8: quantised without a calibration sample (dynamic), and unchecked
        log.warning("export %s of %s: no sample images (%s)", target.slug, it, exc)
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        path = Path(tmp) / layout.MODEL_ONNX
        path.write_bytes(store.read_model_blob(layout.iteration_artifact(p, it, layout.MODEL_ONNX)))
        if target.slug == "ONNXInt8":
            return write_int8(store, p, it, sidecar.task, path, sample)
        return write_converted(store, p, it, target, sidecar.task, path, sample)


def write_converted(
    store: TrainerStore, project_id: str, iteration_id: str, target, task: str, model_path: Path, sample
) -> dict:
    """Convert, check against ONNX on real images, upload the files, then the status note (written last)."""
    from . import converters
    from .export import ExportMismatch
    from .onnx_tf import UnsupportedGraph

    out_dir = model_path.parent / target.slug
    try:
        if sample is None or not len(sample):
            raise ExportMismatch("no readable training image to check the conversion on")
        convert = {
            "OpenVino": converters.to_openvino,
            "TensorFlowNormal": converters.to_savedmodel,
            "TensorFlowLite": converters.to_tflite,
        }[target.slug]
        found = convert(model_path, out_dir, sample, task)
        for name, inside in target.files:
            store.write_artifact(
                project_id, iteration_id, name, (out_dir / inside).read_bytes(), "application/octet-stream"
            )
        status = {"status": "Done", **found}
    except (ExportMismatch, ImportError, UnsupportedGraph) as exc:
        log.warning("no %s export for %s: %s", target.slug, iteration_id, exc)
        status = {
            "status": "Failed",
            "reason": f"{type(exc).__name__}: {exc}" if isinstance(exc, ImportError) else str(exc),
        }
    status["at"] = messages.now_iso()
    store.write_json(project_id, iteration_id, target.status, status)
    return status
