"""The learning curve: top-1 (overall and per tag) against training size from cross-validated subsamples,
a power law fitted to it, and what doubling the images is expected to bring.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .evidence import Evidence, Finding
from .heads import fit_head, head_probabilities

LEARNING_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of each training fold (a linear head on the frozen embeddings)
FLAT_GAIN = 0.01


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
            keep: list[int] = []  # row numbers
            for j in range(R):
                mine = train[ev.y[train] == j]
                if len(mine):
                    keep.extend(rng.choice(mine, max(1, int(round(len(mine) * fraction))), replace=False))
            train = np.array(sorted(keep))
        if len(np.unique(ev.y[train])) < R:
            return None
        std, head = fit_head(ev.features[train], ev.y[train], R, ev.c, False)
        right = head_probabilities(std, head, ev.features[test], False).argmax(1) == ev.y[test]
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
