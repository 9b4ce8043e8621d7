"""Likely mislabelled images, from the training's out-of-fold probabilities (confident learning)."""

from __future__ import annotations

import numpy as np

from .evidence import Evidence, Finding

# Label errors (confident learning): an image whose out-of-fold prediction passes another tag's own average
# confidence and beats its tag by MARGIN.
LABEL_MARGIN = 0.2
LABEL_SELF_CONFIDENCE = 0.05  # ... and gives its own tag at most this probability


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
