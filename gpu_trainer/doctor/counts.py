"""Images per tag against Custom Vision's own guidance: 50 per tag recommended, 5 (classification) or 15
(detection) at the least, and the tags within 1:2 of each other.
"""

from __future__ import annotations

from .evidence import Finding

RECOMMENDED_PER_TAG = 50
MINIMUM_PER_TAG = {"classification": 5, "detection": 15}
BALANCE_RATIO = 0.5  # smallest / largest tag under 1:2 is worth a warning


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
    small, large = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
    ratio = counts[small] / max(counts[large], 1)
    if ratio >= BALANCE_RATIO:
        return []
    under = sorted(
        (t for t, n in counts.items() if n < BALANCE_RATIO * counts[large]), key=counts.__getitem__
    )
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
