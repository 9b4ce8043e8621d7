"""The "Suggested" order of stored predictions: the images a person should review first.

A prediction is worth a look when the model was unsure about it (`uncertainty`, 0..1, computed when it
was stored: prediction/scoring.py). Ranking by uncertainty alone lets one scene fill the top of the list:
a camera that sends the same hard frame fifty times gives fifty near-identical uncertain predictions,
and labelling the second one teaches the model nothing the first did not. So the order is a greedy
maximal-marginal-relevance walk over the candidates, using the 64-bit difference hash stored with each
prediction (`signature`; near-duplicates differ in few bits):

    score(c) = uncertainty(c) - PENALTY * max over chosen s of similarity(c, s)
    similarity(c, s) = max(0, 1 - hamming(signature_c, signature_s) / NEAR_BITS)

Take the best score, raise the others' penalties, repeat. With PENALTY 1 an exact duplicate of a chosen
image drops below every image not near one already chosen; an image NEAR_BITS or more bits away from all
chosen ones keeps its plain uncertainty (unrelated photos differ in about 32 bits). Ties go to the order
the candidates come in (uncertainty, then id), so the walk is deterministic. The walk costs O(n^2) bit
operations (numpy), so it covers the POOL most uncertain candidates; the rest follow by uncertainty.

Measured (tests/unit/test_review_ranking.py, Fashion-MNIST: 240 different items and 6 bursts of 10 noisy
frames of a hard item): the plain order's top 10 held 2 to 6 repeats of a burst over 5 draws, this order's
none. dHash is coarse on 28-pixel items: bursts that also shift by a pixel keep about 1.5 repeats (of 4.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEAR_BITS = 16
PENALTY = 1.0
POOL = 1000


def _signatures(signatures: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    values, known = np.zeros(len(signatures), np.uint64), np.zeros(len(signatures), bool)
    for i, sig in enumerate(signatures):
        try:
            values[i], known[i] = int(sig, 16), len(sig) == 16
        except (TypeError, ValueError):
            pass
    return values, known


def diverse_order(uncertainty: Sequence[float], signatures: Sequence[str]) -> list[int]:
    """Indexes of the candidates in review order. Pass them most uncertain first (ties: by id)."""
    n = len(uncertainty)
    base = np.asarray(uncertainty, dtype=np.float64)
    values, known = _signatures(signatures)
    nearest = np.zeros(n)  # the highest similarity of each candidate to one already chosen
    left = np.ones(n, bool)
    order = []
    for _ in range(n):
        best = int(np.argmax(np.where(left, base - PENALTY * nearest, -np.inf)))
        order.append(best)
        left[best] = False
        if known[best]:
            bits = np.bitwise_count(values ^ values[best]).astype(np.float64)
            similarity = np.where(known, np.clip(1.0 - bits / NEAR_BITS, 0.0, 1.0), 0.0)
            np.maximum(nearest, similarity, out=nearest)
    return order
