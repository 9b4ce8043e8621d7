"""Near-duplicate images: pairs (a thumbnail correlation AND an embedding cosine), the groups the training
keeps in one fold, and how much splitting them across folds would have inflated the cross-validated top-1.
"""

from __future__ import annotations

import numpy as np

from .evidence import HASH, THUMBNAIL, Evidence, Finding
from .heads import linear_cv_top1

# Near duplicates: the normalised correlation of 16x16 grey thumbnails AND the cosine of the embeddings (either
# alone pairs distinct look-alike products on clean real sets; together they did not).
DUP_THUMBNAIL, DUP_COSINE = 0.98, 0.75


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
    grouped = grouped if grouped is not None else linear_cv_top1(ev, ev.folds)
    split = linear_cv_top1(ev, ev.folds_ungrouped)
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
