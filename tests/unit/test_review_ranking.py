"""The Suggested ranking (functions/training/ranking.py): on its own, and measured on real product photos
(Fashion-MNIST) with bursts of near-identical frames, against a plain most-uncertain-first order."""

import numpy as np
import pytest

from functions.prediction import scoring
from functions.training import ranking
from tests.support import fashion_mnist as fm


def test_diverse_order_spreads_near_duplicates_and_keeps_ties_in_order():
    assert ranking.diverse_order([], []) == []
    assert ranking.diverse_order([0.9, 0.8, 0.7], ["", "", "bad"]) == [0, 1, 2]  # no signature: plain order
    same, near, far = "f0f0f0f0f0f0f0f0", "f0f0f0f0f0f0f0f1", "0f0f0f0f0f0f0f0f"
    # the far one jumps ahead of two look-alikes; an exact copy goes after a near one (1 bit is a little new)
    assert ranking.diverse_order([0.9, 0.89, 0.88, 0.3], [same, same, near, far]) == [0, 3, 2, 1]
    assert ranking.diverse_order([0.5, 0.5], [same, far]) == [0, 1]


def _uncertainty(probabilities) -> float:
    predictions = [{"probability": float(p), "tagId": str(i)} for i, p in enumerate(probabilities)]
    return scoring.uncertainty_and_margin("classification", "Multiclass", predictions)[0]


def _near_duplicates_in_top(order, burst_of, k=10) -> int:
    """How many of the first k are a repeat of a burst already shown above them."""
    seen, repeats = set(), 0
    for i in order[:k]:
        if burst_of[i] is not None:
            repeats += burst_of[i] in seen
            seen.add(burst_of[i])
    return repeats


@pytest.mark.skipif(not fm.available(), reason="needs Debian's dataset-fashion-mnist")
def test_suggested_keeps_bursts_of_one_hard_item_out_of_the_top_ten():
    """240 different items and 6 bursts of 10 frames of a hard item (a fixed camera: sensor noise and +-10%
    light), scored by a nearest-centroid classifier; the same measure is in the report of issue 4."""
    train, labels = fm.load("train")
    test, _ = fm.load("t10k")
    chosen = fm.balanced_indices(labels, 100)
    flat = train[chosen].reshape(len(chosen), -1) / 255.0
    centroids = np.stack([flat[labels[chosen] == c].mean(0) for c in range(10)])

    def probabilities(images):
        logits = -((images.reshape(len(images), 1, -1) / 255.0 - centroids[None]) ** 2).sum(-1) / 4.0
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    plain_repeats, suggested_repeats = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(test), 300, replace=False)
        singles, spare = picked[:240], picked[240:]
        hard = spare[np.argsort([-_uncertainty(p) for p in probabilities(test[spare])])[:6]]
        frames = [
            np.clip(test[i] * rng.uniform(0.9, 1.1) + rng.normal(0, 4, test[i].shape), 0, 255).astype(
                np.uint8
            )
            for i in hard
            for _ in range(10)
        ]
        images = np.concatenate([test[singles], np.stack(frames)])
        burst_of = [None] * len(singles) + [b for b in range(len(hard)) for _ in range(10)]
        uncertainty = [_uncertainty(p) for p in probabilities(images)]
        signatures = [scoring.signature(fm.as_rgb(im)) for im in images]
        plain = sorted(range(len(images)), key=lambda i: (-uncertainty[i], i))
        suggested = [
            plain[j]
            for j in ranking.diverse_order([uncertainty[i] for i in plain], [signatures[i] for i in plain])
        ]
        plain_repeats.append(_near_duplicates_in_top(plain, burst_of))
        suggested_repeats.append(_near_duplicates_in_top(suggested, burst_of))
    assert np.mean(plain_repeats) >= 3 and suggested_repeats == [0] * 5, (plain_repeats, suggested_repeats)
