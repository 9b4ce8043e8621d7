"""The export catalogue: which (platform, flavour) pairs exist, for which tasks, how each is made, and the
names of its blobs. One definition for the Functions app (export routes, packaging) and the trainer
(converters, on an ExportJob).

    PACKAGED   zipped by the Functions app from the float ONNX model at once (ONNX12, the edge containers)
    CONVERTED  made by the trainer on demand (an ExportJob): it writes the model file(s), then a status note
               {"status": "Done" | "Failed", "reason", ...}; the routes answer Exporting until the note exists

A pair that is asked for but not made is refused with the reason (ExportRefused), never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import artifacts, layout

PACKAGED, CONVERTED = "packaged", "converted"
BOTH = frozenset({artifacts.CLASSIFICATION, artifacts.DETECTION})
CLASSIFIERS = frozenset({artifacts.CLASSIFICATION})
# What tf.saved_model.save writes (the graph with its constants, the fingerprint, the (empty) variables).
SAVEDMODEL_FILES = (
    "saved_model.pb",
    "fingerprint.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
)


class ExportRefused(ValueError):
    """This platform/flavour cannot be exported (for this task); the message says why and what to use."""


@dataclass(frozen=True)
class Target:
    platform: str
    flavor: str
    made: str
    slug: str  # names the zip (exports/{slug}.zip) and, for CONVERTED, the status note
    tasks: frozenset = BOTH
    # CONVERTED: the files the trainer writes, (iteration artifact name, name in the zip); the first one's
    # presence means the model exists. `status` is the trainer's note on how the conversion went.
    files: tuple[tuple[str, str], ...] = ()
    status: str | None = None

    @property
    def zip_name(self) -> str:
        return f"exports/{self.slug}.zip"

    @property
    def artifact(self) -> str | None:
        return self.files[0][0] if self.files else None

    def blob(self, project_id: str, iteration_id: str, name: str) -> str:
        return layout.iteration_artifact(project_id, iteration_id, name)


TARGETS: tuple[Target, ...] = (
    Target("ONNX", "ONNX12", PACKAGED, "ONNX12"),
    Target(
        "ONNX",
        "ONNXInt8",
        CONVERTED,
        "ONNXInt8",
        files=((layout.MODEL_INT8_ONNX, "model.onnx"),),
        status=layout.MODEL_INT8_STATUS,
    ),
    Target(
        "OpenVino",
        "",
        CONVERTED,
        "OpenVino",
        files=(("exports/OpenVino/model.xml", "model.xml"), ("exports/OpenVino/model.bin", "model.bin")),
        status="exports/OpenVino.status.json",
    ),
    Target(
        "TensorFlow",
        "TensorFlowNormal",
        CONVERTED,
        "TensorFlowNormal",
        tasks=CLASSIFIERS,
        files=tuple(
            (f"exports/TensorFlowNormal/saved_model/{n}", f"saved_model/{n}") for n in SAVEDMODEL_FILES
        ),
        status="exports/TensorFlowNormal.status.json",
    ),
    Target(
        "TensorFlow",
        "TensorFlowLite",
        CONVERTED,
        "TensorFlowLite",
        tasks=CLASSIFIERS,
        files=(("exports/TensorFlowLite/model.tflite", "model.tflite"),),
        status="exports/TensorFlowLite.status.json",
    ),
    Target("DockerFile", "Linux", PACKAGED, "DockerFile-Linux"),
    Target("DockerFile", "ARM", PACKAGED, "DockerFile-ARM"),
)
DEFAULT_FLAVOR = {"ONNX": "ONNX12", "DockerFile": "Linux", "OpenVino": "", "TensorFlow": "TensorFlowNormal"}
_BY_KEY = {(t.platform.lower(), t.flavor.lower()): t for t in TARGETS}
_PLATFORMS = {t.platform.lower(): t.platform for t in TARGETS}

# Named by the SDK's ExportPlatform / ExportFlavor but not made here: the reason is the answer.
REFUSED = {
    (
        "dockerfile",
        "windows",
    ): "Windows containers are not built (the model server targets Linux); use flavor "
    "Linux (x86-64) or ARM (arm64, e.g. a Raspberry Pi or Jetson)",
    ("onnx", "onnx10"): "ONNX10 (opset 10) is not made: the graph needs opset 17; use ONNX12 or ONNXInt8",
    ("vaidk", None): "VAIDK (the Vision AI Dev Kit) is discontinued hardware; use DockerFile ARM or ONNX",
    (
        "coreml",
        None,
    ): "CoreML models are not made: a conversion is only shipped once it is checked against the "
    "ONNX model, and no CoreML runtime exists off Apple hardware (the trainer runs on Linux); "
    "on iOS / macOS run the ONNX export with onnxruntime's CoreML execution provider, or "
    "use TensorFlowLite",
}
# Why a target refuses a task (the default: it is made for the other task only).
TASK_REFUSED = {
    ("TensorFlow", artifacts.DETECTION): "object detectors are not translated to TensorFlow (their decoding "
    "runs top-k over shapes known only at run time); use ONNX, OpenVino or "
    "a DockerFile container",
}


def platforms(task: str | None = None) -> tuple[str, ...]:
    """The platforms that can be exported (for a task: the iteration's exportableTo)."""
    return tuple(dict.fromkeys(t.platform for t in TARGETS if task is None or task in t.tasks))


def resolve(platform: str | None, flavor: str | None, task: str) -> Target:
    """The target for an export_iteration request, or ExportRefused with the reason."""
    p = (platform or "").strip().lower()
    f = (flavor or "").strip().lower() or None
    reason = REFUSED.get((p, f)) or REFUSED.get((p, None))
    if reason:
        raise ExportRefused(
            f"platform {platform} flavor {flavor}: {reason}" if flavor else f"platform {platform}: {reason}"
        )
    if p not in _PLATFORMS:
        raise ExportRefused(f"platform: {platform!r} is not supported; use {', '.join(platforms())}")
    name = _PLATFORMS[p]
    f = (f or DEFAULT_FLAVOR.get(name, "")).lower()
    target = _BY_KEY.get((p, f))
    if target is None:
        flavors = [t.flavor or "(none)" for t in TARGETS if t.platform == name]
        raise ExportRefused(f"flavor: {flavor!r} is not supported for {name}; use {', '.join(flavors)}")
    if task not in target.tasks:
        why = TASK_REFUSED.get((name, task), f"it exports {' and '.join(sorted(target.tasks))} models only")
        raise ExportRefused(f"platform {name} flavor {target.flavor}: {why}")
    return target


def find(platform: str, flavor: str | None) -> Target | None:
    """The target named exactly (an ExportJob's platform and flavor)."""
    return _BY_KEY.get((platform.lower(), (flavor or "").lower()))
