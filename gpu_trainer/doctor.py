"""The model doctor: after each training, what to change in the data to get a better model, computed from
what the training already has (embeddings, out-of-fold predictions, folds) plus a few cheap per-image
statistics (a perceptual hash, the border's colours, size and format).

    diagnose_classifier(examples, evidence, ...) -> advice        (advice.json beside the iteration)
    diagnose_detector(manifest-like images and boxes) -> advice

Each finding: kind, severity (high | medium | low), tags (names), image_ids (the API's ids, most telling
first), message (a sentence a person can act on) and numbers (what it is based on). `checks` says what was
looked at, and why a check did not run (too few images, budget). The thresholds below follow Custom Vision's
own guidance (50 images per tag, 5 / 15 minimum, 1:2 balance) or were set on clean real sets so that they
raise no false alarm there (benchmarks/doctor.py measures both).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from cvcore import messages

log = logging.getLogger(__name__)

RECOMMENDED_PER_TAG = 50
MINIMUM_PER_TAG = {"classification": 5, "detection": 15}
BALANCE_RATIO = 0.5  # smallest / largest tag under 1:2 is worth a warning
LISTED_IMAGES = 20  # image ids per finding
# Label errors (confident learning): an image whose out-of-fold prediction passes another tag's own average
# confidence and beats its tag by MARGIN.
LABEL_MARGIN = 0.2
LABEL_SELF_CONFIDENCE = 0.05  # ... and gives its own tag at most this probability
# Near duplicates: the normalised correlation of 16x16 grey thumbnails AND the cosine of the embeddings (either
# alone pairs distinct look-alike products on clean real sets; together they did not).
DUP_THUMBNAIL, DUP_COSINE = 0.98, 0.75
# Shortcuts: a tag told apart from the others by what should not matter with this F1 (and this many images).
SHORTCUT_F1, SHORTCUT_MIN_IMAGES = 0.8, 5
# Out-of-set: images of a tag the model never saw, scored at or above the default threshold by this fraction.
OUT_OF_SET_FRACTION = 0.5
LEARNING_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of each training fold (a linear head on the frozen embeddings)
FLAT_GAIN = 0.01
DOCTOR_STATS = "doctor-stats-v3"  # name of the per-image statistics in the feature cache
BORDER = 0.12  # the outer band (fraction of each side) taken as "background"
THUMB = 16
# Where each statistic sits in an image_stats vector.
HASH = slice(0, 64)
THUMBNAIL = slice(64, 64 + THUMB * THUMB)
_AFTER = 64 + THUMB * THUMB
BACKGROUND = slice(_AFTER, _AFTER + 6)  # border band RGB mean, std
COLOURS = slice(_AFTER + 6, _AFTER + 12)  # whole image RGB mean, std
FILE = slice(_AFTER + 12, _AFTER + 16)  # width, height, aspect, format code
SIDES = slice(_AFTER + 16, _AFTER + 28)  # RGB mean of the top, bottom, left and right border bands
MAX_LEFT_OUT = 4  # out-of-set: tags left out in turn (the largest ones)
# Train vs field: the newest stored predictions compared with the training images. A field image is "unlike"
# when its nearest training image is further than the training images' own 2% nearest-neighbour quantile.
FIELD_SAMPLE = 64
FIELD_MIN = 8
DRIFT_QUANTILE, DRIFT_FRACTION = 0.02, 0.3


@dataclass
class Finding:
    kind: str
    severity: str
    message: str
    tags: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    prediction_ids: list[str] = field(default_factory=list)  # stored predictions it is about (drift)


@dataclass
class Evidence:
    """What the classifier training hands the doctor (classification.train_classifier)."""

    features: np.ndarray  # [n, d] standardised global embeddings of the chosen backbone
    folds: np.ndarray  # fold per image (-1: training only)
    k: int
    y: np.ndarray  # multiclass: regular-tag position per image (R = none / Negative); multilabel: [n, R] 0/1
    regular_names: list[str]
    multilabel: bool
    oof: np.ndarray  # [n, R] out-of-fold probabilities of the regular tags (NaN rows: not evaluated)
    c: float  # the chosen L2 strength
    gate: tuple[float, float]  # (centre, width) of the familiarity gate
    gate_dims: int
    has_negative: bool
    stats: np.ndarray | None = None  # image_stats per image, when the training computed them
    folds_ungrouped: np.ndarray | None = (
        None  # the folds the training would have used without duplicate groups
    )
    embed: object = (
        None  # (image loader by index, keys) -> features like `features` (stored predictions' images)
    )


# --- per-image statistics ---------------------------------------------------------------------------------


def image_stats(image: Image.Image, fmt: str | None = None) -> np.ndarray:
    """float32 [348]: 64 bits of difference hash, a 16x16 grey thumbnail (zero mean, unit norm), border colour
    mean/std (RGB), whole-image colour mean/std, width, height, aspect, a format code, and the colour of each
    side's border band: the object masked out and the rest blurred to four patches (see the slices)."""
    grey = image.convert("L")
    g = np.asarray(grey.resize((9, 8), Image.BILINEAR), np.float32)
    bits = (g[:, 1:] > g[:, :-1]).reshape(-1).astype(np.float32)
    thumb = np.asarray(grey.resize((THUMB, THUMB), Image.BILINEAR), np.float32).reshape(-1)
    thumb = thumb - thumb.mean()
    thumb = thumb / max(float(np.linalg.norm(thumb)), 1e-6)
    rgb = np.asarray(image.convert("RGB").resize((64, 64), Image.BILINEAR), np.float32) / 255.0
    b = max(1, int(round(64 * BORDER)))
    band = np.concatenate(
        [
            rgb[:b].reshape(-1, 3),
            rgb[-b:].reshape(-1, 3),
            rgb[b:-b, :b].reshape(-1, 3),
            rgb[b:-b, -b:].reshape(-1, 3),
        ]
    )
    whole = rgb.reshape(-1, 3)
    w, h = image.size
    code = format_code(fmt or image.format)
    sides = [
        rgb[:b].reshape(-1, 3).mean(0),
        rgb[-b:].reshape(-1, 3).mean(0),
        rgb[:, :b].reshape(-1, 3).mean(0),
        rgb[:, -b:].reshape(-1, 3).mean(0),
    ]
    return np.concatenate(
        [
            bits,
            thumb,
            band.mean(0),
            band.std(0),
            whole.mean(0),
            whole.std(0),
            [w, h, w / max(h, 1), code],
            *sides,
        ]
    ).astype(np.float32)


def format_code(fmt: str | None) -> float:
    return {"JPEG": 1.0, "PNG": 2.0, "BMP": 3.0, "GIF": 4.0, "WEBP": 5.0, "TIFF": 6.0}.get(
        (fmt or "").upper(), 0.0
    )


def stats_for(examples, cache=None, threads: int = 4) -> np.ndarray:
    """image_stats for each example, through the feature cache (a retraining does not load images again)."""

    def one(ex):
        key = (DOCTOR_STATS, 0, str(ex.key))
        found = cache.get(key) if cache is not None else None
        if found is not None:
            return found
        value = image_stats(ex.image)
        if cache is not None:
            cache.put(key, value)
        return value

    with ThreadPoolExecutor(threads) as pool:
        out = np.stack(list(pool.map(one, examples)))
    if cache is not None and hasattr(cache, "flush"):
        cache.flush()
    return out


# --- the diagnoses ----------------------------------------------------------------------------------------


def quantity(counts: dict[str, int], task: str) -> list[Finding]:
    low = {t: n for t, n in counts.items() if n < RECOMMENDED_PER_TAG}
    if not low:
        return []
    minimum = MINIMUM_PER_TAG[task]
    below = sorted(t for t, n in low.items() if n < minimum)
    worst = sorted(low, key=lambda t: low[t])
    listed = ", ".join(f"'{t}' ({low[t]})" for t in worst[:6]) + (" ..." if len(worst) > 6 else "")
    return [
        Finding(
            "quantity",
            "high" if below else "medium",
            f"{len(low)} of {len(counts)} tags have fewer than the {RECOMMENDED_PER_TAG} images per tag "
            f"Custom Vision recommends: {listed}. Add photos of these tags first"
            + (
                f"; {', '.join(below)} {'is' if len(below) == 1 else 'are'} under the minimum of {minimum}."
                if below
                else "."
            ),
            tags=worst,
            numbers={"images_per_tag": dict(counts), "recommended": RECOMMENDED_PER_TAG, "minimum": minimum},
        )
    ]


def balance(counts: dict[str, int]) -> list[Finding]:
    if len(counts) < 2:
        return []
    small, large = min(counts, key=counts.get), max(counts, key=counts.get)
    ratio = counts[small] / max(counts[large], 1)
    if ratio >= BALANCE_RATIO:
        return []
    under = sorted((t for t, n in counts.items() if n < BALANCE_RATIO * counts[large]), key=counts.get)
    return [
        Finding(
            "balance",
            "high" if ratio < 0.2 else "medium",
            f"The tags are unbalanced: '{small}' has {counts[small]} images and '{large}' {counts[large]} "
            f"(1:{counts[large] / max(counts[small], 1):.1f}; keep it within 1:2). The model will favour "
            f"'{large}'; add images of {', '.join(repr(t) for t in under[:6])}.",
            tags=under,
            numbers={"ratio": round(ratio, 3), "smallest": counts[small], "largest": counts[large]},
        )
    ]


def label_errors(ev: Evidence, ids: list[str]) -> list[Finding]:
    """Confident learning (Northcutt et al.): each tag's threshold is the average out-of-fold probability its
    own images give it; an image whose most probable passing tag is another one, which beats its own tag by
    LABEL_MARGIN while its own gets at most LABEL_SELF_CONFIDENCE, is likely mislabelled. Multilabel: a tag
    given with under 5% or missing with over 95%."""
    rows = np.flatnonzero(np.isfinite(ev.oof).all(axis=1))
    if ev.multilabel:
        return _multilabel_errors(ev, ids, rows)
    R = len(ev.regular_names)
    known = rows[ev.y[rows] < R]
    if len(known) < 10 or R < 2:
        return []
    p = ev.oof
    thresholds = np.array(
        [p[known[ev.y[known] == j], j].mean() if (ev.y[known] == j).any() else 1.0 for j in range(R)]
    )
    flagged = []
    for i in known:
        given = int(ev.y[i])
        passing = [j for j in range(R) if p[i, j] >= thresholds[j]]
        if not passing:
            continue
        best = max(passing, key=lambda j: p[i, j])
        if (
            best != given
            and p[i, best] - p[i, given] >= LABEL_MARGIN
            and p[i, given] <= LABEL_SELF_CONFIDENCE
        ):
            flagged.append((float(p[i, best] - p[i, given]), i, best))
    if not flagged:
        return []
    flagged.sort(reverse=True)
    names = ev.regular_names
    suggestions = [
        {
            "image_id": ids[i],
            "tag": names[int(ev.y[i])],
            "suggested": names[j],
            "probability_of_tag": round(float(p[i, int(ev.y[i])]), 3),
            "probability_of_suggested": round(float(p[i, j]), 3),
        }
        for _, i, j in flagged
    ]
    share = len(flagged) / len(known)
    pairs: dict[tuple[str, str], int] = {}
    for s in suggestions:
        pairs[(s["tag"], s["suggested"])] = pairs.get((s["tag"], s["suggested"]), 0) + 1
    top = sorted(pairs.items(), key=lambda kv: -kv[1])[:3]
    return [
        Finding(
            "label_errors",
            "high" if share >= 0.04 else "medium" if share >= 0.025 else "low",
            f"{len(flagged)} images ({share:.0%}) look mislabelled: the model, not trained on them, is sure "
            f"they show another tag (most often "
            + "; ".join(f"'{a}' tagged images that look like '{b}' ({n})" for (a, b), n in top)
            + "). Check them first, most confident first, and retag or delete the wrong ones.",
            tags=sorted({s["tag"] for s in suggestions}),
            image_ids=[s["image_id"] for s in suggestions],
            numbers={
                "suspects": suggestions[:200],
                "checked": int(len(known)),
                "thresholds": {names[j]: round(float(thresholds[j]), 3) for j in range(R)},
            },
        )
    ]


def _multilabel_errors(ev: Evidence, ids: list[str], rows: np.ndarray) -> list[Finding]:
    out = []
    for i in rows:
        for j, name in enumerate(ev.regular_names):
            if ev.y[i, j] and ev.oof[i, j] < 0.05:
                out.append((float(0.05 - ev.oof[i, j]), ids[i], name, "remove"))
            elif not ev.y[i, j] and ev.oof[i, j] > 0.95:
                out.append((float(ev.oof[i, j] - 0.95), ids[i], name, "add"))
    if not out:
        return []
    out.sort(reverse=True)
    return [
        Finding(
            "label_errors",
            "medium",
            f"{len(out)} image tags look wrong: the model, not trained on these images, is sure a given tag "
            "is absent or a missing one is present. Check them and fix the tags.",
            tags=sorted({o[2] for o in out}),
            image_ids=list(dict.fromkeys(o[1] for o in out)),
            numbers={"suspects": [{"image_id": o[1], "tag": o[2], "action": o[3]} for o in out[:200]]},
        )
    ]


def duplicate_pairs(features: np.ndarray, stats: np.ndarray) -> list[tuple[int, int, float, float, int]]:
    """Pairs (i, j, thumbnail correlation, embedding cosine, hash distance) of near duplicates."""
    thumbs = stats[:, THUMBNAIL]
    z = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)
    bits = stats[:, HASH] > 0.5
    out = []
    for start in range(0, len(thumbs), 1024):
        near = thumbs[start : start + 1024] @ thumbs.T
        for a, j in zip(*np.nonzero(near >= DUP_THUMBNAIL), strict=True):
            i, j = start + int(a), int(j)
            if i < j:
                cos = float(z[i] @ z[j])
                if cos >= DUP_COSINE:
                    out.append(
                        (
                            i,
                            j,
                            round(float(near[a, j]), 4),
                            round(cos, 4),
                            int(np.count_nonzero(bits[i] != bits[j])),
                        )
                    )
    return out


def duplicate_groups(stats: np.ndarray) -> np.ndarray:
    """A group id per image: images whose thumbnails correlate at DUP_THUMBNAIL or more (transitively) share
    one. Looser than duplicate_pairs (no embedding yet): look-alikes grouped together only make the
    cross-validation a little stricter."""
    thumbs = stats[:, THUMBNAIL]
    parent = np.arange(len(thumbs))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    for start in range(0, len(thumbs), 1024):
        near = thumbs[start : start + 1024] @ thumbs.T
        for a, j in zip(*np.nonzero(near >= DUP_THUMBNAIL), strict=True):
            i = start + int(a)
            if i < j:
                ri, rj = root(i), root(int(j))
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(i) for i in range(len(thumbs))])


def _linear_cv_top1(ev: Evidence, folds: np.ndarray) -> float | None:
    R = len(ev.regular_names)
    rows = np.flatnonzero((folds >= 0) & (ev.y < R))
    right = []
    for f in range(ev.k):
        test, train = rows[folds[rows] == f], rows[folds[rows] != f]
        if not len(test) or len(np.unique(ev.y[train])) < R:
            continue
        std, head = _fit(ev.features[train], ev.y[train], R, ev.c, False)
        right.extend(_probabilities(std, head, ev.features[test], False).argmax(1) == ev.y[test])
    return float(np.mean(right)) if right else None


def add_grouping_effect(findings: list[Finding], ev: Evidence, grouped: float | None = None) -> None:
    """Say, on the near-duplicate findings, how much splitting the copies across folds would have inflated
    the cross-validated top-1."""
    dup = [f for f in findings if f.kind in ("duplicates_within_tags", "duplicates_across_tags")]
    if not dup:
        return
    effect = grouping_effect(ev, grouped)
    if effect is None:
        return
    for f in dup:
        f.numbers["cross_validation"] = effect
        if f.kind == "duplicates_within_tags":
            f.message += (
                f" Had they been split across folds, the reported top-1 would have been "
                f"{effect['top1_duplicates_split']:.3f} instead of {effect['top1_duplicates_in_one_fold']:.3f}"
                f" ({effect['inflation']:+.3f})."
            )


def grouping_effect(ev: Evidence, grouped: float | None = None) -> dict | None:
    """Top-1 of a linear head on the embeddings with near duplicates kept in one fold (as the training did;
    `grouped` when the learning curve measured it already) and with them split across folds: how much copies
    would have inflated the reported figures."""
    if (
        ev.multilabel
        or ev.k < 2
        or ev.folds_ungrouped is None
        or np.array_equal(ev.folds, ev.folds_ungrouped)
    ):
        return None
    grouped = grouped if grouped is not None else _linear_cv_top1(ev, ev.folds)
    split = _linear_cv_top1(ev, ev.folds_ungrouped)
    if grouped is None or split is None:
        return None
    return {
        "top1_duplicates_in_one_fold": round(grouped, 4),
        "top1_duplicates_split": round(split, 4),
        "inflation": round(split - grouped, 4),
    }


def duplicates(
    ev: Evidence, stats: np.ndarray, ids: list[str], tag_sets: list[tuple[str, ...]]
) -> list[Finding]:
    pairs = duplicate_pairs(ev.features, stats)
    across = [(i, j, c, h) for i, j, _, c, h in pairs if tag_sets[i] != tag_sets[j]]
    within = [(i, j, c, h) for i, j, _, c, h in pairs if tag_sets[i] == tag_sets[j]]
    out = []
    if across:
        tags = sorted({t for i, j, *_ in across for t in (*tag_sets[i], *tag_sets[j])})
        out.append(
            Finding(
                "duplicates_across_tags",
                "high",
                f"{len(across)} pairs of (near) identical images carry different tags: the model is "
                "taught two answers for one picture. Keep one tag for each pair (or delete one image).",
                tags=tags,
                image_ids=list(dict.fromkeys(x for i, j, *_ in across for x in (ids[i], ids[j]))),
                numbers={
                    "pairs": [
                        {
                            "images": [ids[i], ids[j]],
                            "tags": [list(tag_sets[i]), list(tag_sets[j])],
                            "cosine": c,
                            "hash_distance": h,
                        }
                        for i, j, c, h in across[:200]
                    ]
                },
            )
        )
    if within:
        out.append(
            Finding(
                "duplicates_within_tags",
                "medium" if len(within) >= 0.05 * len(ids) else "low",
                f"{len(within)} pairs of (near) identical images share a tag. They add little to the "
                "training and, tested against their own copy, make the reported precision look better "
                "than it is, so the cross-validation keeps each such group in one fold. Prefer new, "
                "varied photos to copies.",
                tags=sorted({t for i, _, *_ in within for t in tag_sets[i]}),
                image_ids=list(dict.fromkeys(x for i, j, *_ in within for x in (ids[i], ids[j]))),
                numbers={
                    "pairs": [
                        {"images": [ids[i], ids[j]], "cosine": c, "hash_distance": h}
                        for i, j, c, h in within[:200]
                    ]
                },
            )
        )
    return out


def _cv_predict(x: np.ndarray, y: np.ndarray, folds: np.ndarray, k: int) -> np.ndarray:
    """Out-of-fold class predictions of a shrunk linear discriminant (closed form) on the few values in `x`."""
    pred = np.full(len(y), -1)
    for f in range(k):
        test, train = folds == f, (folds != f)
        classes = np.unique(y[train])
        if not test.any() or len(classes) < 2:
            continue
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        xt = (x[train] - mu) / sd
        means = np.stack([xt[y[train] == c].mean(0) for c in classes])
        centred = xt - means[np.searchsorted(classes, y[train])]
        cov = centred.T @ centred / max(len(xt) - len(classes), 1)
        cov = 0.9 * cov + 0.1 * np.eye(len(cov)) * np.trace(cov) / len(cov)
        w = np.linalg.solve(cov, means.T)  # [d, classes]
        bias = -0.5 * np.sum(means.T * w, axis=0) + np.log(
            np.bincount(np.searchsorted(classes, y[train])) / len(xt)
        )
        pred[test] = classes[np.argmax(((x[test] - mu) / sd) @ w + bias, axis=1)]
    return pred


def _camera_view(properties: list[dict]) -> np.ndarray | None:
    """One-hot of the EXIF camera (cameras on fewer than 2 images pooled with the unknown), or None when fewer
    than two cameras are known: nothing to tell tags apart by."""
    cameras = [str(p.get("camera") or "") for p in properties]
    seen = {c: n for c, n in zip(*np.unique(cameras, return_counts=True), strict=True) if c and n >= 2}
    if len(seen) < 2:
        return None
    order = sorted(seen)
    return np.array([[float(c == k) for k in order] for c in cameras], np.float32)


def _file_view(stats: np.ndarray, properties: list[dict]) -> np.ndarray:
    """Width, height, aspect and the UPLOADED format (the manifest's; the stored bytes may be a re-encode)."""
    x = stats[:, FILE].copy()
    for i, p in enumerate(properties):
        if p.get("format"):
            x[i, 3] = format_code(p["format"])
    return x


def shortcuts(
    ev: Evidence, stats: np.ndarray, ids: list[str], properties: list[dict] | None = None
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
        pred = _cv_predict(x, y, ev.folds[rows], ev.k)
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


def _fit(features, y, classes: int, c: float, multilabel: bool):
    from .classifier_model import Standardiser
    from .linear_head import fit_linear

    std = Standardiser.fit(features)
    head = fit_linear(std(features), y, multilabel=multilabel, classes=classes, c=c)
    return std, head


def _probabilities(std, head, features, multilabel: bool) -> np.ndarray:
    from .cv import sigmoid_rows, softmax_rows
    from .linear_head import head_logits

    z = head_logits(std(features), head)
    return sigmoid_rows(z) if multilabel else softmax_rows(z)


def out_of_set(
    ev: Evidence, ids: list[str], threshold: float = 0.5, deadline: float | None = None
) -> list[Finding]:
    """Leave one tag out: train on the others, score the left-out tag's images (with the familiarity gate, as
    the exported model does). When such unseen things still get confident scores, a Negative / Other tag helps."""
    from .calibration import gate, l2_normalise, max_similarity

    R = len(ev.regular_names)
    if ev.multilabel or R < 3:
        return []
    per_tag = {}
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
        std, head = _fit(ev.features[train], y, R - 1, ev.c, False)
        p = _probabilities(std, head, ev.features[test], False)
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
    from .calibration import l2_normalise

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


def field_features(ev: Evidence, field: list[tuple[str, object]]) -> tuple[np.ndarray, list[str]]:
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


def learning_curve(
    ev: Evidence, counts: dict[str, int], deadline: float | None = None, seed: int = 0
) -> dict:
    """Top-1 (overall and per tag) against training size from cross-validated subsamples of the training folds,
    a power law err(n) = a * n^-b fitted per fold, and what doubling the images is expected to bring."""
    R = len(ev.regular_names)
    if ev.multilabel or ev.k < 2:
        return {"skipped": "multilabel or held-out evaluation"}
    rows = np.flatnonzero((ev.folds >= 0) & (ev.y < R))
    points: dict[float, list] = {f: [] for f in LEARNING_FRACTIONS}
    started = time.monotonic()

    def one(fraction: float, f: int):
        if deadline is not None and time.monotonic() > deadline:
            return None
        test = rows[ev.folds[rows] == f]
        train = rows[ev.folds[rows] != f]
        if not len(test):
            return None
        if fraction < 1:
            rng = np.random.default_rng([seed, int(fraction * 1000), f])
            keep = []
            for j in range(R):
                mine = train[ev.y[train] == j]
                if len(mine):
                    keep.extend(rng.choice(mine, max(1, int(round(len(mine) * fraction))), replace=False))
            train = np.array(sorted(keep))
        if len(np.unique(ev.y[train])) < R:
            return None
        std, head = _fit(ev.features[train], ev.y[train], R, ev.c, False)
        right = _probabilities(std, head, ev.features[test], False).argmax(1) == ev.y[test]
        per_tag = [
            float(right[ev.y[test] == j].mean()) if (ev.y[test] == j).any() else np.nan for j in range(R)
        ]
        return fraction, len(train), float(right.mean()), per_tag

    import torch

    threads = torch.get_num_threads()
    jobs = [(fr, f) for fr in reversed(LEARNING_FRACTIONS) for f in range(ev.k)]  # whole folds first
    with ThreadPoolExecutor(max(1, min(threads, 4))) as pool:
        for got in pool.map(lambda a: one(*a), jobs):
            if got is not None:
                points[got[0]].append(got[1:])
    usable = {fr: v for fr, v in points.items() if v}
    if len(usable) < 3 or 1.0 not in usable:
        return {"skipped": "not enough time or images for a curve"}
    sizes = np.array([np.mean([p[0] for p in usable[fr]]) for fr in sorted(usable)])
    acc = np.array([np.mean([p[1] for p in usable[fr]]) for fr in sorted(usable)])
    spread = np.array([np.std([p[1] for p in usable[fr]]) for fr in sorted(usable)])
    gain, gain_sd = _doubling_gain(sizes, acc, spread)
    evaluated = rows[np.isfinite(ev.oof[rows]).all(axis=1)]
    model_top1 = (
        float(np.mean(ev.oof[evaluated].argmax(1) == ev.y[evaluated])) if len(evaluated) else float(acc[-1])
    )
    # the +- also holds the sampling error of a top-1 measured on this many images (another set of the same
    # size would score differently by about that much)
    gain_sd = math.hypot(gain_sd, math.sqrt(model_top1 * (1 - model_top1) / max(len(evaluated), 1)))
    per_tag = {}
    for j, name in enumerate(ev.regular_names):
        tag_acc = np.array([_finite_mean([p[2][j] for p in usable[fr]]) for fr in sorted(usable)])
        tag_sd = np.array([_finite_std([p[2][j] for p in usable[fr]]) for fr in sorted(usable)])
        tag_sizes = sizes * counts.get(name, 0) / max(sum(counts.values()), 1)
        g, s = _doubling_gain(tag_sizes, tag_acc, tag_sd)
        r = float(np.clip(tag_acc[-1], 0, 1)) if np.isfinite(tag_acc[-1]) else 0.0
        s = math.hypot(s, math.sqrt(r * (1 - r) / max(counts.get(name, 0), 1)))
        per_tag[name] = {
            "recall": round(float(tag_acc[-1]), 4),
            "images": counts.get(name, 0),
            "expected_gain_when_doubled": round(g, 4),
            "plus_minus": round(s, 4),
        }
    return {
        "fractions": sorted(usable),
        "sizes": [round(float(s), 1) for s in sizes],
        "top1": [round(float(a), 4) for a in acc],
        "top1_sd": [round(float(s), 4) for s in spread],
        "expected_gain_when_doubled": round(gain, 4),
        "plus_minus": round(gain_sd, 4),
        "model_top1": round(model_top1, 4),
        "predicted_top1_when_doubled": round(min(1.0, model_top1 + gain), 4),
        "per_tag": per_tag,
        "seconds": round(time.monotonic() - started, 3),
    }


def _finite_mean(values) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def _finite_std(values) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.std()) if len(v) else 0.0


def _doubling_gain(sizes: np.ndarray, acc: np.ndarray, spread: np.ndarray) -> tuple[float, float]:
    """Fit log(err) = log(a) - b log(n) (b >= 0) and return (err(n) - err(2n), its spread from the points')."""
    err = np.clip(1 - acc, 1e-3, 1)
    if not np.all(np.isfinite(err)) or len(sizes) < 2:
        return 0.0, 0.0
    x = np.log(np.maximum(sizes, 1))
    slope, intercept = np.polyfit(x, np.log(err), 1)
    b = max(0.0, -slope)
    n = sizes[-1]
    now = float(np.exp(intercept - b * math.log(n)))
    gain = now * (1 - 2**-b)
    # spread: the same fit with the points moved by one standard deviation each way
    lo = np.clip(1 - (acc - spread), 1e-3, 1)
    hi = np.clip(1 - (acc + spread), 1e-3, 1)
    alt = []
    for e in (lo, hi):
        s, i = np.polyfit(x, np.log(e), 1)
        bb = max(0.0, -s)
        alt.append(float(np.exp(i - bb * math.log(n))) * (1 - 2**-bb))
    return float(max(0.0, gain)), float(np.std([gain, *alt]))


def curve_findings(curve: dict, counts: dict[str, int]) -> list[Finding]:
    if "skipped" in curve:
        return []
    gain = curve["expected_gain_when_doubled"]
    if gain < FLAT_GAIN:
        return [
            Finding(
                "learning_curve",
                "low",
                f"The learning curve is flat: doubling the images is expected to change top-1 by "
                f"{gain:+.2f} (+- {curve['plus_minus']:.2f}). More photos like these are unlikely to help; "
                "vary them (backgrounds, lighting, angles, sizes) or fix the label problems above.",
                numbers=curve,
            )
        ]
    tags = sorted(curve["per_tag"], key=lambda t: -curve["per_tag"][t]["expected_gain_when_doubled"])
    best = [t for t in tags if curve["per_tag"][t]["expected_gain_when_doubled"] >= FLAT_GAIN][:3]
    tag_words = "; ".join(
        f"doubling '{t}' to {2 * counts.get(t, 0)} images: recall "
        f"{curve['per_tag'][t]['expected_gain_when_doubled']:+.2f} +- "
        f"{curve['per_tag'][t]['plus_minus']:.2f}"
        for t in best
    )
    return [
        Finding(
            "learning_curve",
            "medium" if gain >= 0.03 else "low",
            f"More images will help: doubling every tag is expected to raise top-1 from "
            f"{curve['model_top1']:.2f} by {gain:+.2f} (+- {curve['plus_minus']:.2f})"
            + (f". Most gain per image: {tag_words}." if tag_words else "."),
            tags=best,
            numbers=curve,
        )
    ]


# --- entry points -----------------------------------------------------------------------------------------


def diagnose_classifier(
    examples,
    ev: Evidence,
    *,
    cache=None,
    budget_seconds: float | None = None,
    field: list[tuple[str, object]] = (),
    properties: dict[str, dict] | None = None,
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
        known = [(properties or {}).get(i, {}) for i in ids]
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
