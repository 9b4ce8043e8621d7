"""What the model never saw: images of a tag left out of the training (out_of_set), and the stored
predictions' images compared with the training images (drift, field_features).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .evidence import LISTED_IMAGES, Evidence, Finding
from .heads import fit_head, head_probabilities

FieldImages = Sequence[
    tuple[str, Callable[[], bytes]]
]  # stored predictions: (prediction id, loader of its bytes)

log = logging.getLogger(__name__)

# Out-of-set: images of a tag the model never saw, scored at or above the default threshold by this fraction.
OUT_OF_SET_FRACTION = 0.5
MAX_LEFT_OUT = 4  # out-of-set: tags left out in turn (the largest ones)
# Train vs field: the newest stored predictions compared with the training images. A field image is "unlike"
# when its nearest training image is further than the training images' own 2% nearest-neighbour quantile.
FIELD_SAMPLE = 64
FIELD_MIN = 8
DRIFT_QUANTILE, DRIFT_FRACTION = 0.02, 0.3


def out_of_set(
    ev: Evidence, ids: list[str], threshold: float = 0.5, deadline: float | None = None
) -> list[Finding]:
    """Leave one tag out: train on the others, score the left-out tag's images (with the familiarity gate, as
    the exported model does). When such unseen things still get confident scores, a Negative / Other tag helps."""
    from ..calibration import gate, l2_normalise, max_similarity

    R = len(ev.regular_names)
    if ev.multilabel or R < 3:
        return []
    per_tag: dict[str, dict[str, Any]] = {}  # tag name: fraction_confident, taken_for
    rows_all = np.flatnonzero(ev.y < R)
    sizes = np.bincount(ev.y[rows_all], minlength=R)
    for t in sorted(range(R), key=lambda j: -sizes[j])[:MAX_LEFT_OUT]:
        if deadline is not None and per_tag and time.monotonic() > deadline:
            break
        train = rows_all[ev.y[rows_all] != t]
        test = rows_all[ev.y[rows_all] == t]
        if len(test) < 3:
            continue
        remap = {old: new for new, old in enumerate(sorted(set(range(R)) - {t}))}
        y = np.array([remap[int(v)] for v in ev.y[train]])
        std, head = fit_head(ev.features[train], y, R - 1, ev.c, False)
        p = head_probabilities(std, head, ev.features[test], False)
        g = ev.gate_dims
        bank = l2_normalise(std(ev.features[train])[:, :g])
        sims = max_similarity(l2_normalise(std(ev.features[test])[:, :g]), bank)
        p = p * gate(sims, *ev.gate)[:, None]
        confident = p.max(1) >= threshold
        back = {new: old for old, new in remap.items()}
        mistaken = (
            np.bincount([back[int(v)] for v in p.argmax(1)[confident]], minlength=R)
            if confident.any()
            else np.zeros(R, int)
        )
        per_tag[ev.regular_names[t]] = {
            "fraction_confident": round(float(confident.mean()), 3),
            "taken_for": ev.regular_names[int(mistaken.argmax())] if confident.any() else None,
        }
    if not per_tag:
        return []
    mean = float(np.mean([v["fraction_confident"] for v in per_tag.values()]))
    worst = sorted(per_tag, key=lambda t: -per_tag[t]["fraction_confident"])
    if mean < OUT_OF_SET_FRACTION:
        return []
    advice = (
        "Add a Negative tag with photos of what the camera sees when none of your tags is there"
        if not ev.has_negative
        else "Add more Negative images, especially lookalikes"
    )
    return [
        Finding(
            "out_of_set",
            "medium" if not ev.has_negative else "low",
            f"Things the model has never seen still get confident answers: when one tag is left out of the "
            f"training, {mean:.0%} of its images are scored at {threshold:.0%} or more as another tag (e.g. "
            f"'{worst[0]}' taken for '{per_tag[worst[0]]['taken_for']}'). {advice}, or an 'Other' tag.",
            tags=worst[:6],
            numbers={"mean_fraction_confident": round(mean, 3), "per_tag": per_tag, "threshold": threshold},
        )
    ]


def drift(ev: Evidence, field_features: np.ndarray, prediction_ids: list[str]) -> list[Finding]:
    """Are the images the model is asked about (stored predictions) like the ones it was trained on?"""
    if len(field_features) < FIELD_MIN or len(ev.features) < 3:
        return []
    from ..calibration import l2_normalise

    z = l2_normalise(ev.features)
    near = z @ z.T
    np.fill_diagonal(near, -np.inf)
    own = near.max(axis=1)  # each training image's nearest other training image
    threshold = float(np.quantile(own, DRIFT_QUANTILE))
    field_near = (l2_normalise(field_features) @ z.T).max(axis=1)
    unlike = field_near < threshold
    share = float(unlike.mean())
    numbers = {
        "field_images": int(len(field_near)),
        "unlike": int(unlike.sum()),
        "share_unlike": round(share, 3),
        "expected_share": DRIFT_QUANTILE,
        "threshold": round(threshold, 4),
        "median_similarity_field": round(float(np.median(field_near)), 4),
        "median_similarity_training": round(float(np.median(own)), 4),
    }
    if share < DRIFT_FRACTION:
        return []
    order = np.argsort(field_near)
    ranked = [prediction_ids[i] for i in order if unlike[i]]
    return [
        Finding(
            "drift",
            "high" if share >= 0.5 else "medium",
            f"The images sent for prediction differ from the training images: {share:.0%} of the "
            f"{len(field_near)} newest stored predictions look unlike every training image (about "
            f"{DRIFT_QUANTILE:.0%} would, were they alike). Train on images like those the camera sends: "
            f"label the {min(len(ranked), LISTED_IMAGES)} listed predictions first (most unlike first) and "
            "add them to the training set.",
            prediction_ids=ranked[: LISTED_IMAGES * 5],
            numbers=numbers,
        )
    ]


def field_features(ev: Evidence, field: FieldImages) -> tuple[np.ndarray, list[str]]:
    """Embed the stored predictions' images (decoded and checked like training images); unreadable ones are left
    out."""
    from cvcore.imaging import ImageError, decode_rgb

    images, ids = [], []
    for prediction_id, load in field:
        try:
            images.append(decode_rgb(load(), max_bytes=None))
            ids.append(prediction_id)
        except (ImageError, OSError) as exc:
            log.info("stored prediction %s not readable for the doctor: %s", prediction_id, exc)
    if not images or ev.embed is None:
        return np.zeros((0, ev.features.shape[1])), []
    return ev.embed(lambda i: images[i], [f"prediction-{p}" for p in ids]), ids
