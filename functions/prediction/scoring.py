"""What the review loop needs to know about a stored prediction, computed once when it is made.

- `uncertainty` (0..1, higher = more worth a human look): multiclass, the entropy of the probabilities
  over log(number of tags); multilabel, the largest binary entropy of a tag (in bits); detection, the
  largest binary entropy of a region that reaches REGION_FLOOR (0 when there is none).
- `margin`: multiclass, top-1 minus top-2 probability; multilabel and detection, the smallest |2p - 1|.
- `signature`: a 64-bit difference hash of the image (grey 9x8, each pixel brighter than its right
  neighbour?), 16 hex digits; near-duplicate images differ in few bits (`distance`), so a "Suggested"
  ordering can spread them out.
"""

from __future__ import annotations

import math

from cvcore import artifacts

REGION_FLOOR = 0.05


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def uncertainty_and_margin(
    task: str, classification_type: str | None, predictions: list[dict]
) -> tuple[float, float]:
    probs = [float(p["probability"]) for p in predictions]
    if task == artifacts.DETECTION:
        probs = [p for p in probs if p >= REGION_FLOOR]
    if not probs:
        return 0.0, 1.0
    if task == artifacts.CLASSIFICATION and (classification_type or "Multiclass") == "Multiclass":
        if len(probs) < 2:
            return 0.0, 1.0
        total = sum(probs) or 1.0
        entropy = -sum(p / total * math.log(p / total) for p in probs if p > 0)
        top = sorted(probs, reverse=True)
        return min(1.0, entropy / math.log(len(probs))), top[0] - top[1]
    return max(_binary_entropy(p) for p in probs), min(abs(2 * p - 1) for p in probs)


def signature(image) -> str:
    """Difference hash of a PIL image."""
    small = image.resize((9, 8), reducing_gap=2.0).convert("L")
    pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def distance(a: str, b: str) -> int:
    """Bits that differ between two signatures (0 = the same picture, for a dHash; <= 10 = near)."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")
