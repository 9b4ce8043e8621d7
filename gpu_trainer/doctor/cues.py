"""Shortcuts: is a tag told apart by what should not matter (the background, the file's size and format, the
camera), each such view cross-validated on its own?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .evidence import BACKGROUND, FILE, LISTED_IMAGES, SIDES, Evidence, Finding, format_code
from .heads import cv_predict

Properties = Mapping[
    str, Any
]  # an image's manifest entry (its uploaded `format`, EXIF `camera`), {}: unknown

# Shortcuts: a tag told apart from the others by what should not matter with this F1 (and this many images).
SHORTCUT_F1, SHORTCUT_MIN_IMAGES = 0.8, 5


def _camera_view(properties: Sequence[Properties]) -> np.ndarray | None:
    """One-hot of the EXIF camera (cameras on fewer than 2 images pooled with the unknown), or None when fewer
    than two cameras are known: nothing to tell tags apart by."""
    cameras = [str(p.get("camera") or "") for p in properties]
    seen = {c: n for c, n in zip(*np.unique(cameras, return_counts=True), strict=True) if c and n >= 2}
    if len(seen) < 2:
        return None
    order = sorted(seen)
    return np.array([[float(c == k) for k in order] for c in cameras], np.float32)


def _file_view(stats: np.ndarray, properties: Sequence[Properties]) -> np.ndarray:
    """Width, height, aspect and the UPLOADED format (the manifest's; the stored bytes may be a re-encode)."""
    x = stats[:, FILE].copy()
    for i, p in enumerate(properties):
        if p.get("format"):
            x[i, 3] = format_code(p["format"])
    return x


def shortcuts(
    ev: Evidence, stats: np.ndarray, ids: list[str], properties: Sequence[Properties] | None = None
) -> list[Finding]:
    """Is a tag told apart by what should not matter: the background (the image with its centre, where the
    object usually is, masked out and each side's border band blurred to one colour, plus the band's colour
    spread), the image size / aspect / uploaded format, or the camera that took it (EXIF make and model, kept
    from the upload in the manifest)? Each view is cross-validated on the training's folds."""
    if ev.multilabel or ev.k < 2:
        return []
    R = len(ev.regular_names)
    rows = np.flatnonzero((ev.folds >= 0) & (ev.y < R)) if ev.k > 1 else np.array([], int)
    if len(rows) < 20 or len(np.unique(ev.y[rows])) < 2:
        return []
    properties = properties if properties is not None else [{} for _ in ids]
    views = {
        "background": (
            np.concatenate([stats[:, SIDES], stats[:, BACKGROUND][:, 3:]], axis=1),
            "the background alone (the image borders with the centre masked out, blurred)",
        ),
        "size_format": (_file_view(stats, properties), "the image size, aspect ratio and file format alone"),
    }
    camera = _camera_view(properties)
    if camera is not None:
        views["camera"] = (camera, "the camera that took them alone (EXIF make and model)")
    remedy = {
        "background": ("background", "backgrounds"),
        "size_format": ("file properties", "sizes and formats"),
        "camera": ("camera", "cameras"),
    }
    out = []
    for view, (x, words) in views.items():
        x = x[rows]
        if np.all(x.std(0) < 1e-6):
            continue
        y = ev.y[rows]
        pred = cv_predict(x, y, ev.folds[rows], ev.k)
        for j, name in enumerate(ev.regular_names):
            mine = y == j
            if mine.sum() < SHORTCUT_MIN_IMAGES:
                continue
            tp = int(np.sum(mine & (pred == j)))
            precision = tp / max(int(np.sum(pred == j)), 1)
            recall = tp / int(mine.sum())
            f1 = 2 * precision * recall / max(precision + recall, 1e-9)
            if f1 < SHORTCUT_F1:
                continue
            found = rows[mine & (pred == j)]
            numbers = {
                "view": view,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "f1": round(f1, 3),
                "images": int(mine.sum()),
            }
            if view == "camera":
                names, n = np.unique(
                    [str(properties[i].get("camera") or "unknown") for i in rows[mine]], return_counts=True
                )
                numbers["cameras"] = {
                    str(c): int(k) for c, k in sorted(zip(names, n, strict=True), key=lambda t: -t[1])
                }
            what, others = remedy[view]
            out.append(
                Finding(
                    "shortcut",
                    "high",
                    f"'{name}' can be told from the other tags by {words}: a model given nothing else finds {tp} of "
                    f"its {int(mine.sum())} images (precision {precision:.2f}). The model may be learning the "
                    f"{what} rather than the object; add '{name}' photos with other {others}, and other tags' "
                    f"photos like these.",
                    tags=[name],
                    image_ids=[ids[i] for i in found[:LISTED_IMAGES]],
                    numbers=numbers,
                )
            )
    return out
