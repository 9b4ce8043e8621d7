"""Region proposals from the image alone (functions/training/proposal_search.py, the path taken when a
project has no trained detector): composed scenes (real object photos pasted onto real backgrounds, exact
boxes: tests/support/scenes.py), recall of the ground-truth boxes at IoU 0.5 and 0.3 among the top 10 and
top 50 proposals, against a uniform multi-scale sliding-window grid of the same count (windows of 1/m of
the image at stride 1/(2m), m = 1, 2, 3, ..., the last level thinned evenly), measured in the same run;
and the time to propose for a 640x480 image. Target: clearly above the grid at each count; well under
300 ms per 640x480 image."""

from __future__ import annotations

import statistics
import time

SCENES, SEED = 50, 7
COUNTS, OVERLAPS = (10, 50), (0.5, 0.3)
TIMING_SIZE, TIMING_RUNS = (640, 480), 10


def grid(count: int) -> list[tuple[float, float, float, float]]:
    """`count` windows (ltwh, 0..1), coarse to fine."""
    out: list[tuple[float, float, float, float]] = []
    m = 1
    while len(out) < count:
        side, stride = 1 / m, 1 / (2 * m)
        level = [(i * stride, j * stride, side, side) for j in range(2 * m - 1) for i in range(2 * m - 1)]
        room = count - len(out)
        if room < len(level):
            level = [level[round(k * (len(level) - 1) / max(room - 1, 1))] for k in range(room)]
        out.extend(level)
        m += 1
    return out


def recall(truth: list, proposals: list, count: int, overlap: float) -> tuple[int, int]:
    """(ground-truth boxes matched by one of the first `count` proposals at IoU >= overlap, all of them)."""
    from cvcore import boxes as boxops

    if not truth:
        return 0, 0
    if not proposals:
        return 0, len(truth)
    best = boxops.iou(truth, proposals[:count]).max(1)
    return int((best >= overlap).sum()), len(truth)


def run() -> dict:
    from functions.training.proposal_search import propose
    from tests.support import scenes

    counts = {(name, k, t): [0, 0] for name in ("proposals", "grid") for k in COUNTS for t in OVERLAPS}
    sizes = []
    for i in range(SCENES):
        s = scenes.scene(SEED * 1000 + i, scenes.DEFAULT_TAGS, (320, 240), objects=(1, 3))
        truth = [b[1:] for b in s.boxes]
        found = [p[1:] for p in propose(s.image)]
        sizes.append(len(found))
        for k in COUNTS:
            windows = grid(k)
            for t in OVERLAPS:
                for name, boxes in (("proposals", found), ("grid", windows)):
                    hit, n = recall(truth, boxes, k, t)
                    counts[(name, k, t)][0] += hit
                    counts[(name, k, t)][1] += n
    big = scenes.scene(SEED, scenes.DEFAULT_TAGS, TIMING_SIZE).image
    propose(big)  # warm
    times = []
    for _ in range(TIMING_RUNS):
        started = time.perf_counter()
        propose(big)
        times.append(time.perf_counter() - started)
    return {
        "scenes": SCENES,
        "objects": counts[("grid", COUNTS[0], OVERLAPS[0])][1],
        "mean_proposals": statistics.mean(sizes),
        "recall": {f"{name}@{k}@{t}": hit / max(n, 1) for (name, k, t), (hit, n) in counts.items()},
        "ms_640x480": {"p50": 1000 * statistics.median(times), "max": 1000 * max(times)},
    }


def report(r: dict) -> str:
    rec = r["recall"]
    lines = [
        f"region proposals from the image alone ({r['scenes']} composed 320x240 scenes, {r['objects']} "
        f"objects; {r['mean_proposals']:.1f} proposals per image on average)"
    ]
    for k in COUNTS:
        for t in OVERLAPS:
            lines.append(
                f"  recall@IoU{t} top {k}: proposals {rec[f'proposals@{k}@{t}']:.3f}  "
                f"grid {rec[f'grid@{k}@{t}']:.3f}"
            )
    ms = r["ms_640x480"]
    lines.append(
        f"  time per 640x480 image: p50 {ms['p50']:.0f} ms, max {ms['max']:.0f} ms (target < 300 ms)"
    )
    return "\n".join(lines)
