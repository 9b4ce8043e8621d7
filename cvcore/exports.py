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
    Target("ONNX", "ONNXInt8", CONVERTED, "ONNXInt8", files=((layout.MODEL_INT8_ONNX, "model.onnx"),),
           status=layout.MODEL_INT8_STATUS),
    Target("OpenVino", "", CONVERTED, "OpenVino", files=(("exports/OpenVino/model.xml", "model.xml"),
                                                          ("exports/OpenVino/model.bin", "model.bin")),
           status="exports/OpenVino.status.json"),
    Target("DockerFile", "Linux", PACKAGED, "DockerFile-Linux"),
    Target("DockerFile", "ARM", PACKAGED, "DockerFile-ARM"),
)
DEFAULT_FLAVOR = {"ONNX": "ONNX12", "DockerFile": "Linux", "OpenVino": ""}
_BY_KEY = {(t.platform.lower(), t.flavor.lower()): t for t in TARGETS}
_PLATFORMS = {t.platform.lower(): t.platform for t in TARGETS}

# Named by the SDK's ExportPlatform / ExportFlavor but not made here: the reason is the answer.
REFUSED = {
    ("dockerfile", "windows"): "Windows containers are not built (the model server targets Linux); use flavor "
                               "Linux (x86-64) or ARM (arm64, e.g. a Raspberry Pi or Jetson)",
    ("onnx", "onnx10"): "ONNX10 (opset 10) is not made: the graph needs opset 17; use ONNX12 or ONNXInt8",
    ("vaidk", None): "VAIDK (the Vision AI Dev Kit) is discontinued hardware; use DockerFile ARM or ONNX",
}


def platforms() -> tuple[str, ...]:
    """The platforms that can be exported (the iteration's exportableTo)."""
    return tuple(dict.fromkeys(t.platform for t in TARGETS))


def resolve(platform: str | None, flavor: str | None, task: str) -> Target:
    """The target for an export_iteration request, or ExportRefused with the reason."""
    p = (platform or "").strip().lower()
    f = (flavor or "").strip().lower() or None
    reason = REFUSED.get((p, f)) or REFUSED.get((p, None))
    if reason:
        raise ExportRefused(f"platform {platform} flavor {flavor}: {reason}" if flavor else
                            f"platform {platform}: {reason}")
    if p not in _PLATFORMS:
        raise ExportRefused(f"platform: {platform!r} is not supported; use {', '.join(platforms())}")
    name = _PLATFORMS[p]
    f = (f or DEFAULT_FLAVOR.get(name, "")).lower()
    target = _BY_KEY.get((p, f))
    if target is None:
        flavors = [t.flavor or "(none)" for t in TARGETS if t.platform == name]
        raise ExportRefused(f"flavor: {flavor!r} is not supported for {name}; use {', '.join(flavors)}")
    if task not in target.tasks:
        raise ExportRefused(f"platform {name} flavor {target.flavor} exports classifiers only, not {task} models")
    return target


def find(platform: str, flavor: str | None) -> Target | None:
    """The target named exactly (an ExportJob's platform and flavor)."""
    return _BY_KEY.get((platform.lower(), (flavor or "").lower()))
