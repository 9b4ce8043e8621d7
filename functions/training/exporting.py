"""Exports of a trained iteration (export_iteration / get_exports), through the catalogue in cvcore.exports.

Every export is a zip in the models container (exports/{slug}.zip beside the iteration's artifacts) holding
the model, its sidecar (labels, input size, normalisation, thresholds: model.json), labels.txt and a README
with a short example of running it. PACKAGED targets are zipped here at once; CONVERTED ones are made by the
trainer on an ExportJob: the first request queues it (and leaves a `.requested` marker so a second request
does not queue another) and answers Exporting; get_exports answers Done (zipping what the trainer wrote) or
Failed with the trainer's reason once its status note exists.
"""

from __future__ import annotations

import io
import json
import zipfile
from importlib import metadata
from pathlib import Path

from cvcore import artifacts, domains, exports, layout, messages
from cvcore.errors import BadRequest

from ..domain.ports import BlobStore, JobQueue, MetadataRepository
from ..domain.records import Iteration, Project
from . import integration as integration_messages
from .iterations import _trained

REQUESTED = ".requested"  # beside an export's zip name: asked for before its model existed
EDGE = Path(__file__).resolve().parents[2] / "cvcore" / "edge"
# The cvcore modules the edge server imports: the cloud route's own code, copied into the container.
EDGE_MODULES = ("__init__", "artifacts", "boxes", "errors", "imaging", "inference", "urlfetch")
EDGE_REQUIREMENTS = ("onnxruntime", "numpy", "pillow", "urllib3")  # pinned to what the cloud route runs


def _task(project: Project) -> str:
    domain = domains.get(project.domain_id)
    return (
        artifacts.DETECTION
        if domain and domain.type == domains.OBJECT_DETECTION
        else artifacts.CLASSIFICATION
    )


def _json(blobs: BlobStore, target: exports.Target, status: str, name: str | None) -> dict:
    return {
        "platform": target.platform,
        "status": status,
        "flavor": target.flavor or None,
        "downloadUri": blobs.url(layout.MODELS, name) if name else None,
        "newerVersionAvailable": False,
    }


def _state(
    blobs: BlobStore, project_id: str, iteration_id: str, target: exports.Target
) -> tuple[str, str | None]:
    """("Done", None) when the model the target packs exists; ("Failed", why) when it will not be made;
    else ("Exporting", None)."""
    if target.made == exports.PACKAGED:
        present = blobs.exists(layout.MODELS, target.blob(project_id, iteration_id, layout.MODEL_ONNX))
        return ("Done", None) if present else ("Failed", "the iteration has no model")
    # The trainer writes the model file(s) first and its status note last: only the note says they are all there.
    if target.status is None or target.artifact is None:  # exports.TARGETS gives every converted one both
        raise ValueError(f"export target {target.slug} is converted but names no status note or artifact")
    status_name = target.blob(project_id, iteration_id, target.status)
    if not blobs.exists(layout.MODELS, status_name):
        return "Exporting", None
    note = json.loads(blobs.get(layout.MODELS, status_name))
    if note.get("status") == "Done" and blobs.exists(
        layout.MODELS, target.blob(project_id, iteration_id, target.artifact)
    ):
        return "Done", None
    return "Failed", str(note.get("reason") or f"the {target.flavor or target.platform} export failed")


def exports_of(repo: MetadataRepository, blobs: BlobStore, project_id: str, iteration_id: str) -> list[dict]:
    """The exports asked for so far, with their state."""
    project, it = _trained(repo, project_id, iteration_id)
    found = []
    for target in exports.TARGETS:
        name = target.blob(project.id, it.id, target.zip_name)
        if blobs.exists(layout.MODELS, name):
            found.append(_json(blobs, target, "Done", name))
        elif blobs.exists(layout.MODELS, name + REQUESTED):
            state, _ = _state(blobs, project.id, it.id, target)
            found.append(
                _package(blobs, project, it, target)[0]
                if state == "Done"
                else _json(blobs, target, state, None)
            )
    return found


def export(
    repo: MetadataRepository,
    blobs: BlobStore,
    jobs: JobQueue,
    project_id: str,
    iteration_id: str,
    platform: str | None,
    flavor: str | None,
    integration=None,
) -> dict:
    """Done at once for a PACKAGED target (and delivered: copied to the project's export container, an
    Export message on its queue); Exporting for a CONVERTED one until the trainer's ExportEvent (settled)."""
    project, it = _trained(repo, project_id, iteration_id)
    try:
        target = exports.resolve(platform, flavor, _task(project))
    except exports.ExportRefused as exc:
        raise BadRequest("BadRequestExportValidationFailed", str(exc)) from None
    if not it.exportable:
        raise BadRequest(
            "BadRequestExportValidationFailed",
            "this iteration was trained on a non-compact domain; switch the project to a compact "
            "domain and train again to export",
        )
    state, reason = _state(blobs, project.id, it.id, target)
    if state == "Failed":
        raise BadRequest(
            "BadRequestExportValidationFailed",
            f"{target.platform} {target.flavor}".strip() + f" is not available for this iteration: {reason}",
        )
    if state == "Exporting":
        marker = target.blob(project.id, it.id, target.zip_name) + REQUESTED
        if not blobs.exists(layout.MODELS, marker):
            jobs.send(
                messages.dumps(messages.ExportJob(project.id, it.id, target.flavor, platform=target.platform))
            )
            blobs.put(layout.MODELS, marker, messages.now_iso().encode(), "text/plain")
        return _json(blobs, target, "Exporting", None)
    body, data = _package(blobs, project, it, target)
    _deliver(integration, project, it, target, data, body["downloadUri"])
    return body


def settled(repo: MetadataRepository, blobs: BlobStore, integration, event: messages.ExportEvent) -> str:
    """The trainer finished an ExportJob: zip it (Done) and deliver, or say it failed on the project's queue."""
    project = repo.get_project(event.project_id)
    it = repo.get_iteration(event.project_id, event.iteration_id) if project else None
    target = exports.find(event.platform, event.flavor)
    if project is None or it is None or target is None:  # no project: no iteration looked up either
        return "unknown-iteration"
    if event.status == "Done" and _state(blobs, project.id, it.id, target)[0] == "Done":
        body, data = _package(blobs, project, it, target)
        _deliver(integration, project, it, target, data, body["downloadUri"])
        return "delivered"
    if integration is not None:
        integration.announce(
            project,
            integration_messages.export_message(
                project.id, it.id, target, False, None, event.reason or "the export failed"
            ),
        )
    return "failed"


def _deliver(
    integration, project: Project, it: Iteration, target: exports.Target, data: bytes, download_uri: str
):
    if integration is None:
        return
    copied = integration.backup(
        project.export_model_container_uri, integration_messages.backup_name(project.id, it.id, target), data
    )
    integration.announce(
        project, integration_messages.export_message(project.id, it.id, target, True, copied or download_uri)
    )


# ---- packaging -------------------------------------------------------------------------------------------
def _labels(sidecar: dict) -> str:
    return "\n".join(lab["name"] for lab in sorted(sidecar["labels"], key=lambda lab: lab["index"])) + "\n"


def _readme(
    project: Project, it: Iteration, target: exports.Target, sidecar: dict, sidecar_path: str, usage: str
) -> str:
    height, width = (list(sidecar.get("input_size") or ()) + ["?", "?"])[:2]
    return (
        (EDGE / "README.template.md")
        .read_text()
        .format(
            name=it.name,
            platform=target.platform,
            flavor=target.flavor,
            project_id=project.id,
            iteration_id=it.id,
            task=sidecar.get("task", "classification"),
            tags=", ".join(_labels(sidecar).split("\n")[:-1]) or "-",
            width=width,
            height=height,
            sidecar_path=sidecar_path,
            usage=usage,
        )
    )


# The image as the model wants it (the same steps as cvcore.artifacts.preprocess), for every usage example.
_PREPROCESS = """side = json.load(open("model.json"))                      # input size, mean/std, labels, thresholds
h, w = side["input_size"]
x = np.asarray(Image.open("photo.jpg").convert("RGB").resize((w, h), Image.BILINEAR), np.float32) / 255
x = ((x - side["mean"]) / side["std"]).transpose(2, 0, 1)[None].astype(np.float32)"""
_TOP3 = """labels = open("labels.txt").read().splitlines()
print(sorted(zip(outputs[0][0], labels), reverse=True)[:3])"""

ONNX_USAGE = f"""```python
import json, numpy as np, onnxruntime as ort
from PIL import Image
{_PREPROCESS}
session = ort.InferenceSession("model.onnx")
outputs = session.run(None, {{"image": x}})                 # classifier: probabilities; detector: boxes, scores, labels
{_TOP3}
```"""

DOCKER_USAGE = """```sh
docker build -t {image} .                                  # {arch}
docker run --rm -p 127.0.0.1:80:8080 {image}
curl -X POST http://127.0.0.1/image -H "Content-Type: application/octet-stream" --data-binary @photo.jpg
curl -X POST http://127.0.0.1/image -F imageData=@photo.jpg
curl -X POST http://127.0.0.1/url -H "Content-Type: application/json" -d '{{"url": "https://example.com/a.jpg"}}'
# without Docker: python -m venv v && v/bin/pip install -r requirements.txt && v/bin/python app/server.py --port 8080
```
The reply is the cloud Prediction API's JSON ({{"id", "project", "iteration", "created", "predictions"}}).
The container runs as an unprivileged user and listens on 8080; `GET /` is its health check."""


OPENVINO_USAGE = f"""```python
import json, numpy as np, openvino as ov                  # pip install openvino
from PIL import Image
{_PREPROCESS}
model = ov.Core().compile_model("model.xml", "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})  # or "GPU", "NPU"
outputs = model(x)                                        # classifier: probabilities; detector: boxes, scores, labels
{_TOP3}
```
`model.json` has, under "export", how closely this model matched the ONNX one on real images when it was made
(in f32; without the hint, CPUs with bf16 units run faster in bf16, about 1e-2 off)."""
SAVEDMODEL_USAGE = f"""```python
import json, numpy as np, tensorflow as tf                # pip install tensorflow-cpu
from PIL import Image
{_PREPROCESS}
serve = tf.saved_model.load("saved_model").signatures["serving_default"]
outputs = [serve(image=tf.constant(x))["probabilities"].numpy()]  # input stays [batch, 3, H, W], as in ONNX
{_TOP3}
```
`model.json` has, under "export", how closely this model matched the ONNX one on real images when it was made."""
TFLITE_USAGE = f"""```python
import json, numpy as np                                  # pip install ai-edge-litert (or tensorflow)
from ai_edge_litert.interpreter import Interpreter        # tf.lite.Interpreter has the same API
from PIL import Image
{_PREPROCESS}
run = Interpreter(model_path="model.tflite").get_signature_runner("serving_default")
outputs = [run(image=x)["probabilities"]]                 # float32, input [1, 3, H, W] as in ONNX
{_TOP3}
```
On Android / iOS, the same file runs with LiteRT (the XNNPACK delegate on CPU). `model.json` has, under
"export", how closely this model matched the ONNX one on real images when it was made."""
USAGE = {"OpenVino": OPENVINO_USAGE, "TensorFlowNormal": SAVEDMODEL_USAGE, "TensorFlowLite": TFLITE_USAGE}


def _onnx_files(
    blobs: BlobStore, project: Project, it: Iteration, target: exports.Target
) -> dict[str, bytes]:
    """The model file(s), the sidecar (with, for a converted target, the trainer's agreement check under
    "export"), labels.txt and a README."""
    files = target.files if target.made == exports.CONVERTED else ((layout.MODEL_ONNX, "model.onnx"),)
    sidecar = json.loads(blobs.get(layout.MODELS, target.blob(project.id, it.id, layout.MODEL_SIDECAR)))
    if target.status and blobs.exists(layout.MODELS, target.blob(project.id, it.id, target.status)):
        note = json.loads(blobs.get(layout.MODELS, target.blob(project.id, it.id, target.status)))
        sidecar["export"] = {"platform": target.platform, "flavor": target.flavor or None, **note}
    out = {inside: blobs.get(layout.MODELS, target.blob(project.id, it.id, name)) for name, inside in files}
    usage = USAGE.get(target.slug, ONNX_USAGE)
    return {
        **out,
        "model.json": json.dumps(sidecar, indent=1).encode(),
        "labels.txt": _labels(sidecar).encode(),
        "README.md": _readme(project, it, target, sidecar, "model.json", usage).encode(),
    }


def _docker_files(
    blobs: BlobStore, project: Project, it: Iteration, target: exports.Target
) -> dict[str, bytes]:
    arm = target.flavor == "ARM"
    image = f"customvision-{it.name.lower()}".replace(" ", "-")
    image = "".join(c for c in image if c.isalnum() or c in "-_.") or "customvision-model"
    model = _onnx_files(blobs, project, it, target)
    sidecar = json.loads(model["model.json"])
    info = {
        "projectId": project.id,
        "iterationId": it.id,
        "iterationName": it.name,
        "platform": target.platform,
        "flavor": target.flavor,
        "exportedAt": messages.now_iso(),
    }
    files = {
        "Dockerfile": (EDGE / "Dockerfile.template")
        .read_text()
        .format(
            name=it.name,
            flavor=target.flavor,
            image=image,
            platform_line="--platform=linux/arm64 " if arm else "",
        )
        .encode(),
        "requirements.txt": "".join(f"{d}=={metadata.version(d)}\n" for d in EDGE_REQUIREMENTS).encode(),
        "README.md": _readme(
            project,
            it,
            target,
            sidecar,
            "app/model.json",
            DOCKER_USAGE.format(
                image=image,
                arch="arm64 (build on an ARM host or with buildx --platform linux/arm64)"
                if arm
                else "x86-64",
            ),
        ).encode(),
        ".dockerignore": b"**/__pycache__\n",
        "app/server.py": (EDGE / "server.py").read_bytes(),
        "app/export.json": json.dumps(info, indent=2).encode(),
    }
    for name in ("model.onnx", "model.json", "labels.txt"):
        files[f"app/{name}"] = model[name]
    for module in EDGE_MODULES:
        files[f"app/cvcore/{module}.py"] = (EDGE.parent / f"{module}.py").read_bytes()
    return files


def _package(blobs: BlobStore, project: Project, it: Iteration, target: exports.Target) -> tuple[dict, bytes]:
    files = (_docker_files if target.platform == "DockerFile" else _onnx_files)(blobs, project, it, target)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    name = target.blob(project.id, it.id, target.zip_name)
    blobs.put(layout.MODELS, name, buffer.getvalue(), "application/zip")
    return _json(blobs, target, "Done", name), buffer.getvalue()
