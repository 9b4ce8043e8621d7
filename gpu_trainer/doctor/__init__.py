"""The model doctor: after each training, what to change in the data to get a better model, computed from
what the training already has (embeddings, out-of-fold predictions, folds) plus a few cheap per-image
statistics (a perceptual hash, the border's colours, size and format).

    diagnose_classifier(examples, evidence, ...) -> advice        (advice.json beside the iteration)
    diagnose_detector(manifest-like images and boxes) -> advice

Each finding: kind, severity (high | medium | low), tags (names), image_ids (the API's ids, most telling
first), message (a sentence a person can act on) and numbers (what it is based on). `checks` says what was
looked at, and why a check did not run (too few images, budget). The thresholds (in each check's module)
follow Custom Vision's own guidance (50 images per tag, 5 / 15 minimum, 1:2 balance) or were set on clean
real sets so that they raise no false alarm there (benchmarks/doctor.py measures both).

The checks live in one module each (evidence.py: the inputs and per-image statistics; counts.py,
labels.py, near_duplicates.py, cues.py (shortcuts), curve.py, novelty.py (out-of-set, drift)); this module
runs them (diagnose_*) and re-exports their names, so `from gpu_trainer.doctor import X` names every one.
diagnose_classifier calls each check through this module's namespace, so replacing one here (a test making
it fail) is what the diagnosis runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict

import numpy as np

from cvcore import manifest, messages

from .counts import BALANCE_RATIO, MINIMUM_PER_TAG, RECOMMENDED_PER_TAG, balance, quantity
from .cues import SHORTCUT_F1, SHORTCUT_MIN_IMAGES, Properties, shortcuts
from .curve import FLAT_GAIN, LEARNING_FRACTIONS, curve_findings, learning_curve
from .evidence import (
    BACKGROUND,
    BORDER,
    COLOURS,
    DOCTOR_STATS,
    FILE,
    HASH,
    LISTED_IMAGES,
    SIDES,
    THUMB,
    THUMBNAIL,
    Evidence,
    Finding,
    format_code,
    image_stats,
    stats_for,
)
from .labels import LABEL_MARGIN, LABEL_SELF_CONFIDENCE, label_errors
from .near_duplicates import (
    DUP_COSINE,
    DUP_THUMBNAIL,
    add_grouping_effect,
    duplicate_groups,
    duplicate_pairs,
    duplicates,
    grouping_effect,
)
from .novelty import (
    DRIFT_FRACTION,
    DRIFT_QUANTILE,
    FIELD_MIN,
    FIELD_SAMPLE,
    MAX_LEFT_OUT,
    OUT_OF_SET_FRACTION,
    FieldImages,
    drift,
    field_features,
    out_of_set,
)

__all__ = [
    "BACKGROUND",
    "BALANCE_RATIO",
    "BORDER",
    "COLOURS",
    "DOCTOR_STATS",
    "DRIFT_FRACTION",
    "DRIFT_QUANTILE",
    "DUP_COSINE",
    "DUP_THUMBNAIL",
    "FIELD_MIN",
    "FIELD_SAMPLE",
    "FILE",
    "FLAT_GAIN",
    "HASH",
    "LABEL_MARGIN",
    "LABEL_SELF_CONFIDENCE",
    "LEARNING_FRACTIONS",
    "LISTED_IMAGES",
    "MAX_LEFT_OUT",
    "MINIMUM_PER_TAG",
    "OUT_OF_SET_FRACTION",
    "RECOMMENDED_PER_TAG",
    "SHORTCUT_F1",
    "SHORTCUT_MIN_IMAGES",
    "SIDES",
    "THUMB",
    "THUMBNAIL",
    "Evidence",
    "Finding",
    "add_grouping_effect",
    "balance",
    "curve_findings",
    "diagnose_classifier",
    "diagnose_detector",
    "drift",
    "duplicate_groups",
    "duplicate_pairs",
    "duplicates",
    "field_features",
    "format_code",
    "grouping_effect",
    "image_stats",
    "label_errors",
    "learning_curve",
    "out_of_set",
    "quantity",
    "shortcuts",
    "stats_for",
]

log = logging.getLogger(__name__)


# --- entry points -----------------------------------------------------------------------------------------


def diagnose_classifier(
    examples,
    ev: Evidence,
    *,
    cache=None,
    budget_seconds: float | None = None,
    field: FieldImages = (),
    properties: Mapping[str, manifest.ImageEntry] | None = None,
) -> dict:
    """advice.json for a classifier. `examples` carry the API image ids as keys; `field` is the newest stored
    predictions as (prediction id, loader of the image bytes), for the train-vs-field check; `properties` is
    the manifest's entry per image id (its uploaded `format` and EXIF `camera`, where known)."""
    started = time.monotonic()
    deadline = started + budget_seconds if budget_seconds else None
    ids = [str(ex.key) for ex in examples]
    names = ev.regular_names
    if ev.multilabel:
        tag_sets = [tuple(names[j] for j in np.flatnonzero(ev.y[i])) for i in range(len(ids))]
    else:
        tag_sets = [(names[int(v)],) if v < len(names) else () for v in ev.y]
    counts = {name: sum(1 for s in tag_sets if name in s) for name in names}
    findings: list[Finding] = []
    checks: dict[str, str] = {}

    def check(name: str, fn, estimate: float = 0.0):
        """Run one diagnosis unless the budget is spent, or would be by its `estimate`d seconds."""
        if (
            deadline is not None
            and time.monotonic() + estimate > deadline
            and name not in ("quantity", "balance")
        ):
            checks[name] = "skipped: the doctor's time budget was spent"
            return None
        t = time.monotonic()
        try:
            got = fn()
        except Exception as exc:
            log.warning("doctor check %s failed: %s", name, exc, exc_info=True)
            checks[name] = f"failed: {type(exc).__name__}: {exc}"
            return None
        checks[name] = f"ran in {time.monotonic() - t:.2f} s"
        return got

    findings += check("quantity", lambda: quantity(counts, "classification")) or []
    findings += check("balance", lambda: balance(counts)) or []
    findings += check("label_errors", lambda: label_errors(ev, ids)) or []
    stats = (
        ev.stats if ev.stats is not None else check("image_statistics", lambda: stats_for(examples, cache))
    )
    if stats is not None:  # cheap first: each check below is dearer than the one before
        findings += check("duplicates", lambda: duplicates(ev, stats, ids, tag_sets)) or []
        known: list[Properties] = [(properties or {}).get(i, {}) for i in ids]
        findings += check("shortcuts", lambda: shortcuts(ev, stats, ids, known)) or []
    curve = check("learning_curve", lambda: learning_curve(ev, counts, deadline)) or {}
    findings += curve_findings(curve, counts) if curve else []
    linear_top1 = curve["top1"][-1] if curve.get("fractions", [0])[-1] == 1.0 else None
    # One more cross-validation at full size: the curve fitted its fractions at about that cost in all.
    full_cv = curve.get("seconds", 0.0) / sum(LEARNING_FRACTIONS)
    check("duplicates_cross_validation", lambda: add_grouping_effect(findings, ev, linear_top1), full_cv)
    findings += check("out_of_set", lambda: out_of_set(ev, ids, deadline=deadline)) or []
    if len(field) >= FIELD_MIN:
        findings += check("drift", lambda: drift(ev, *field_features(ev, list(field)))) or []
    else:
        checks["drift"] = f"not run: {len(field)} stored predictions (at least {FIELD_MIN} are needed)"
    return _advice(
        "classification",
        findings,
        checks,
        started,
        {"learning_curve": curve, "images": len(ids), "images_per_tag": counts},
    )


def diagnose_detector(images: list[dict], names: list[str]) -> dict:
    """advice.json for a detector, from its regions: `images` = [{"id", "boxes": [(tag index, x, y, w, h)]}]
    with boxes normalised to the image (0..1)."""
    from cvcore.boxes import iou

    started = time.monotonic()
    regions = {n: 0 for n in names}
    tiny, huge, cut, doubled = [], [], [], []
    for im in images:
        boxes = im["boxes"]
        for t, x, y, w, h in boxes:
            regions[names[t]] += 1
            if w * h < 0.0005 or min(w, h) < 0.01:
                tiny.append((im["id"], names[t]))
            elif w * h > 0.9:
                huge.append((im["id"], names[t]))
            if x <= 0.002 or y <= 0.002 or x + w >= 0.998 or y + h >= 0.998:
                cut.append((im["id"], names[t]))
        if len(boxes) > 1:
            tags = np.array([b[0] for b in boxes])
            ltwh = np.array([b[1:] for b in boxes], dtype=float)
            same = np.triu(iou(ltwh, ltwh) >= 0.9, 1) & (tags[:, None] == tags[None, :])
            doubled += [(im["id"], names[boxes[a][0]]) for a, _ in zip(*np.nonzero(same), strict=True)]
    findings = quantity(regions, "detection") + balance(regions)
    for found, kind, severity, words in (
        (
            tiny,
            "tiny_boxes",
            "medium",
            "regions are tiny (under 0.05% of the image or 1% of a side): detectors "
            "miss such objects; photograph them closer or crop",
        ),
        (
            huge,
            "huge_boxes",
            "low",
            "regions cover over 90% of the image: a classifier may fit better, or add "
            "photos where the object is smaller",
        ),
        (
            cut,
            "boxes_cut_by_border",
            "low",
            "regions touch the image border (the object may be cut off): "
            "include photos with the whole object in view",
        ),
        (
            doubled,
            "duplicate_boxes",
            "high",
            "regions are drawn twice on the same object (same tag, overlap 0.9 or more): delete the copies",
        ),
    ):
        if found:
            findings.append(
                Finding(
                    kind,
                    severity,
                    f"{len(found)} {words}.",
                    tags=sorted({t for _, t in found}),
                    image_ids=list(dict.fromkeys(i for i, _ in found)),
                    numbers={"regions": len(found)},
                )
            )
    checks = {
        k: "ran"
        for k in ("quantity", "balance", "tiny_boxes", "huge_boxes", "boxes_cut_by_border", "duplicate_boxes")
    }
    return _advice(
        "detection", findings, checks, started, {"regions_per_tag": regions, "images": len(images)}
    )


SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _advice(task: str, findings: list[Finding], checks: dict, started: float, extra: dict) -> dict:
    findings = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))
    for f in findings:
        f.image_ids = f.image_ids[: LISTED_IMAGES * 10]
    return {
        "version": 1,
        "task": task,
        "created": messages.now_iso(),
        "seconds": round(time.monotonic() - started, 3),
        "checks": checks,
        "findings": [asdict(f) for f in findings],
        **extra,
    }
