"""The model artifact contract: `model.onnx` plus a JSON sidecar (`model.json`) that says how to feed it
and read it. `preprocess` is the one preprocessing used by the trainer's export check and evaluation and
by the prediction route, so inference sees exactly what training saw.

ONNX graph contract:
- input `image`: float32 [N, 3, H, W], RGB, already normalised ((x/255 - mean) / std), H, W = input_size
- classification: output `probabilities` float32 [N, num_labels] (softmax for Multiclass, sigmoid for
  Multilabel; temperature already applied)
- detection: outputs `boxes` float32 [N, K, 4] (left, top, width, height normalised to 0..1), `scores`
  float32 [N, K], `labels` int64 [N, K], K <= max_detections, after NMS; padded rows have score 0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FORMAT_VERSION = 1
CLASSIFICATION, DETECTION = "classification", "detection"


@dataclass
class Label:
    index: int
    tag_id: str
    name: str
    type: str = "Regular"


@dataclass
class ModelSidecar:
    task: str
    labels: list[Label]
    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    backbone: str
    dataset_hash: str
    classification_type: str | None = None  # Multiclass / Multilabel
    default_threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)  # tagId -> recommended probability threshold
    max_detections: int = 200
    nms_iou: float = 0.5
    temperature: float = 1.0
    metrics: dict = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict) -> ModelSidecar:
        if body.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version: {body.get('format_version')!r} is not supported")
        values = dict(body)
        values["labels"] = [Label(**lab) for lab in body["labels"]]
        values["input_size"] = tuple(body["input_size"])
        values["mean"], values["std"] = tuple(body["mean"]), tuple(body["std"])
        return cls(**values)


def preprocess(images, sidecar: ModelSidecar):
    """RGB PIL images -> the float32 NCHW batch the ONNX graph takes (bilinear resize to input_size, then
    (pixel / 255 - mean) / std, computed as pixel * (1 / (255 std)) - mean / std straight into the batch:
    one pass over uint8 pixels instead of four float copies, equal to within float32 rounding)."""
    import numpy as np
    from PIL import Image

    height, width = sidecar.input_size
    batch = np.empty((len(images), 3, height, width), dtype=np.float32)
    std = np.asarray(sidecar.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
    offset = (np.asarray(sidecar.mean, dtype=np.float32) / std).reshape(3, 1, 1)
    for i, image in enumerate(images):
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
        np.multiply(np.asarray(image).transpose(2, 0, 1), scale, out=batch[i])
        batch[i] -= offset
    return batch
