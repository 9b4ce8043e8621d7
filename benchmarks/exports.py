"""Exports: how long each platform takes from export_iteration to Done (through the official SDK, the local
host and the trainer worker on Azurite), and the exported model's single-image latency on this machine's
cores beside the ONNX model it came from (the baseline, measured in the same run), for a compact MobileNetV2
classifier trained on real photos. The edge container is timed as a process over HTTP beside the cloud
route's HTTP answer for the same image. Environment: EXPORT_BENCH_RUNS (default 50)."""

from __future__ import annotations

import io
import json
import os
import statistics
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from cvcore import artifacts, layout
from tests.support.azurite import running_azurite
from tests.support.edge import edge_python, edge_server
from tests.support.training import CAT, COMPACT, add_cats_and_cups, local_stack, photo, wait_trained

PLATFORMS = (
    ("ONNX", None),
    ("ONNX", "ONNXInt8"),
    ("OpenVino", None),
    ("TensorFlow", "TensorFlowNormal"),
    ("TensorFlow", "TensorFlowLite"),
    ("DockerFile", "Linux"),
)


def _export(trainer, pid, iid, platform, flavor) -> tuple[float, bytes]:
    t = time.perf_counter()
    e = trainer.export_iteration(pid, iid, platform, flavor=flavor)
    while e.status == "Exporting" and time.perf_counter() - t < 600:
        time.sleep(0.2)
        e = next(x for x in trainer.get_exports(pid, iid) if x.platform == platform and x.flavor == e.flavor)
    took = time.perf_counter() - t
    assert e.status == "Done", (platform, flavor, e.status)
    with urllib.request.urlopen(e.download_uri, timeout=30) as resp:
        return took, resp.read()


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def _tensorflow_ms(zips, tmp: Path, batch, threads: int, runs: int) -> tuple[float, float]:
    """The SavedModel through its serving signature (eager call from Python) and the .tflite file in LiteRT."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    zips[("TensorFlow", "TensorFlowNormal")].extractall(tmp / "tf")
    serve = tf.saved_model.load(str(tmp / "tf" / "saved_model")).signatures["serving_default"]
    image = tf.constant(batch)
    saved_ms = _median_ms(lambda: serve(image=image), runs)
    lite = Interpreter(
        model_content=zips[("TensorFlow", "TensorFlowLite")].read("model.tflite"), num_threads=threads
    )
    run_lite = lite.get_signature_runner("serving_default")
    return saved_ms, _median_ms(lambda: run_lite(image=batch), runs)


def run() -> dict:
    import onnxruntime as ort
    import openvino as ov

    runs = int(os.environ.get("EXPORT_BENCH_RUNS", "50"))
    threads = len(os.sched_getaffinity(0))
    rows = {}
    with running_azurite() as conn, local_stack(conn, cpu_seconds=20) as (url, trainer, predictor):
        project = trainer.create_project(f"bench-{layout.new_id()[:8]}", domain_id=COMPACT)
        add_cats_and_cups(trainer, project.id)
        it = wait_trained(trainer, project.id, trainer.train_project(project.id).id)
        trainer.publish_iteration(project.id, it.id, "bench", "/subscriptions/local/prediction")
        zips = {}
        for platform, flavor in PLATFORMS:
            took, data = _export(trainer, project.id, it.id, platform, flavor)
            zips[(platform, flavor)] = zipfile.ZipFile(io.BytesIO(data))
            rows[f"{platform}/{flavor or '-'}"] = {
                "export_s": round(took, 2),
                "zip_kb": round(len(data) / 1024),
            }
        onnx_zip = zips[("ONNX", None)]
        sidecar = artifacts.ModelSidecar.from_json(json.loads(onnx_zip.read("model.json")))
        batch = artifacts.preprocess([Image.open(io.BytesIO(photo(CAT, 60))).convert("RGB")], sidecar)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        base = ort.InferenceSession(onnx_zip.read("model.onnx"), options, providers=["CPUExecutionProvider"])
        base_ms = _median_ms(lambda: base.run(None, {"image": batch}), runs)
        int8 = ort.InferenceSession(
            zips[("ONNX", "ONNXInt8")].read("model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        with tempfile.TemporaryDirectory() as tmp:
            zips[("OpenVino", None)].extractall(tmp)
            core, xml = ov.Core(), str(Path(tmp) / "model.xml")
            compiled = core.compile_model(
                xml, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
            )
            vino_ms = _median_ms(lambda: compiled(batch), runs)
            fast = core.compile_model(
                xml, "CPU", {"INFERENCE_NUM_THREADS": threads}
            )  # bf16 where the CPU has it
            vino_default_ms = _median_ms(lambda: fast(batch), runs)
        with tempfile.TemporaryDirectory() as tmp:
            tf_ms, lite_ms = _tensorflow_ms(zips, Path(tmp), batch, threads, runs)
        rows["TensorFlow/TensorFlowNormal"]["ms"] = tf_ms
        rows["TensorFlow/TensorFlowLite"]["ms"] = lite_ms
        rows["ONNX/-"].update(ms=base_ms, ratio=1.0)
        rows["ONNX/ONNXInt8"].update(ms=_median_ms(lambda: int8.run(None, {"image": batch}), runs))
        rows["OpenVino/-"].update(
            ms=vino_ms,
            default_precision_ms=vino_default_ms,
            default_ratio=round(vino_default_ms / base_ms, 2),
        )
        for key in (
            "ONNX/ONNXInt8",
            "OpenVino/-",
            "TensorFlow/TensorFlowNormal",
            "TensorFlow/TensorFlowLite",
        ):
            rows[key]["ratio"] = round(rows[key]["ms"] / base_ms, 2)
        # The edge container over HTTP, beside the cloud route over HTTP, for the same JPEG.
        data = photo(CAT, 60)
        cloud = f"{url}/customvision/v3.0/Prediction/{project.id}/classify/iterations/bench/image/nostore"
        headers = {"Prediction-Key": "local-prediction-key", "Content-Type": "application/octet-stream"}
        cloud_ms = _median_ms(lambda: requests.post(cloud, data=data, headers=headers, timeout=30), runs)
        with tempfile.TemporaryDirectory() as tmp:
            edge_zip = zips[("DockerFile", "Linux")]
            edge_zip.extractall(tmp)
            with edge_server(Path(tmp), edge_python(edge_zip.read("requirements.txt"))) as edge:
                edge_ms = _median_ms(lambda: requests.post(edge + "/image", data=data, timeout=30), runs)
        rows["DockerFile/Linux"].update(
            ms=edge_ms, http_baseline_ms=cloud_ms, ratio=round(edge_ms / cloud_ms, 2)
        )
        trainer.unpublish_iteration(project.id, it.id)
        trainer.delete_project(project.id)
    assert np.isfinite(base_ms)
    return {
        "threads": threads,
        "runs": runs,
        "rows": rows,
        "input": "x".join(map(str, sidecar.input_size[::-1])),
    }


def report(r: dict) -> str:
    lines = [
        f"exports: export_iteration -> Done, and one {r['input']} image through the exported model on "
        f"{r['threads']} threads (median of {r['runs']}), against the float ONNX model in the same run "
        "(the edge container over HTTP against the cloud route over HTTP)"
    ]
    for key, x in r["rows"].items():
        extra = f", cloud route {x['http_baseline_ms']} ms" if "http_baseline_ms" in x else ""
        if "default_precision_ms" in x:
            extra = (
                f"; f32 as checked, default precision {x['default_precision_ms']} ms, "
                f"ratio {x['default_ratio']}"
            )
        lines.append(
            f"  {key:<28} export {x['export_s']:>6.2f} s, zip {x['zip_kb']:>6} KB, {x.get('ms', '-')} ms "
            f"(ratio {x.get('ratio', '-')}{extra})"
        )
    return "\n".join(lines)
