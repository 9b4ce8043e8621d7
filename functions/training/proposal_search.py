"""Class-agnostic object proposals from an image alone (numpy and Pillow only), selective-search style.

1. The image is shrunk to SIDE pixels on its longer side.
2. Over-segmentation: SLIC-like superpixels (k-means on colour and position, seeded on a grid), split
   into connected pieces; at two scales and in two colour spaces (RGB and an opponent space).
3. Hierarchical grouping (Uijlings et al., "Selective Search"): neighbouring regions merge, most similar
   first (colour and gradient-orientation histograms, size, fill), and every region of the hierarchy gives a
   box; the two scales and two colour spaces give diverse hierarchies.
4. Ranking by objectness (Alexe et al., "Measuring the objectness of image windows"): superpixel
   straddling (an object's box cuts few superpixels) times the colour contrast of the box with its
   surround (chi-square of quantised colour histograms, from integral histograms).
5. Greedy NMS (cvcore.boxes) keeps a diverse, best-first list.

`propose(image)` -> [(confidence, left, top, width, height)], normalised to 0..1, best first.
Deterministic: no random numbers, a fixed number of k-means steps.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from PIL import Image

from cvcore import boxes as boxops

SIDE = 128  # working resolution (longer side, pixels)
SCALES = (60, 160)  # superpixels per segmentation
KMEANS_STEPS = 3
COMPACTNESS = 0.15  # spatial weight: a grid step counts as much as this colour distance (0..1 units)
COLOUR_BINS, ORIENT_BINS = 16, 8
SPECK = 6  # pieces of a superpixel smaller than this (pixels) join a neighbour
MIN_SIDE = 0.04  # smallest box side kept, as a fraction of the image side
NMS_IOU = 0.6
MIXES = ((1, 1, 1, 1),)  # similarity weights (colour, texture, size, fill) of each grouping
CANDIDATES = 300  # the best-scored boxes that go through NMS
MAX_PROPOSALS = 50


def propose(image: Image.Image, limit: int = MAX_PROPOSALS) -> list[tuple[float, float, float, float, float]]:
    rgb = _shrink(image)
    h, w, _ = rgb.shape
    spaces = (rgb, _opponent(rgb))
    candidates, fine = [], None
    for space in spaces:
        texture = _orientations(space)
        for n in SCALES:
            labels = _superpixels(space, n)
            if fine is None and n == max(SCALES):
                fine = labels
            for weights in MIXES:
                candidates.append(_group(labels, space, texture, weights))
    xyxy = np.concatenate(candidates)
    code = ((xyxy[:, 0] * (h + 1) + xyxy[:, 1]) * (w + 1) + xyxy[:, 2]) * (h + 1) + xyxy[:, 3]
    xyxy = xyxy[np.unique(code, return_index=True)[1]]
    sides = (xyxy[:, 2:] - xyxy[:, :2]) / np.array([w, h])
    xyxy = xyxy[(sides >= MIN_SIDE).all(axis=1) & (sides < 0.999).any(axis=1)]
    if len(xyxy) == 0:
        return []
    if fine is None:  # cannot happen: SCALES holds its own max, so the first space's finest labels are kept
        raise AssertionError("no superpixels at the finest scale")
    score = _straddling(fine, xyxy) * _contrast(rgb, xyxy)
    best = np.argsort(-score, kind="stable")[:CANDIDATES]
    xyxy, score = xyxy[best], score[best]
    ltwh = boxops.xyxy_to_ltwh(xyxy / np.array([w, h, w, h], dtype=np.float64))
    keep = boxops.nms(ltwh, score, iou_threshold=NMS_IOU, max_detections=limit)
    return scored_boxes(score, ltwh, keep)


def scored_boxes(score: np.ndarray, ltwh: np.ndarray, keep) -> list[tuple[float, float, float, float, float]]:
    """(score, left, top, width, height) of the kept rows, as plain floats (JSON, and a fixed-length tuple)."""
    return [
        (float(score[i]), float(ltwh[i, 0]), float(ltwh[i, 1]), float(ltwh[i, 2]), float(ltwh[i, 3]))
        for i in keep
    ]


# -- image and features -----------------------------------------------------------------------------------


def _shrink(image: Image.Image) -> np.ndarray:
    k = SIDE / max(image.size)
    if k < 1:
        size = (max(8, round(image.width * k)), max(8, round(image.height * k)))
        image = image.convert("RGB").resize(size, Image.Resampling.BOX)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _opponent(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([(r + g + b) / 3, (r - g + 1) / 2, (r + g - 2 * b + 2) / 4], axis=-1)


def _orientations(space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel and channel: gradient orientation bin (0..ORIENT_BINS-1) and magnitude."""
    gy, gx = np.gradient(space, axis=(0, 1))
    angle = np.arctan2(gy, gx)  # -pi..pi: the sign tells dark-to-light from light-to-dark
    bins = np.minimum(((angle + math.pi) / (2 * math.pi) * ORIENT_BINS).astype(np.int64), ORIENT_BINS - 1)
    return bins, np.hypot(gx, gy)


def _superpixels(space: np.ndarray, n: int) -> np.ndarray:
    """SLIC-like labels (H x W, 0..K-1): k-means on [colour, position * COMPACTNESS / step], every pixel
    against every centre (one matrix product), then split into connected pieces."""
    h, w, c = space.shape
    step = math.sqrt(h * w / n)
    yy, xx = np.mgrid[0:h, 0:w]
    spatial = COMPACTNESS / step
    z = np.concatenate([space.reshape(-1, c), np.stack([yy.ravel(), xx.ravel()], 1) * spatial], 1)
    z = z.astype(np.float32)
    gy = np.arange(step / 2, h, step).astype(int)
    gx = np.arange(step / 2, w, step).astype(int)
    centres = z[(gy[:, None] * w + gx[None, :]).ravel()]
    for _ in range(KMEANS_STEPS):  # |z - c|^2 = |z|^2 - 2 z.c + |c|^2; |z|^2 does not change the argmin
        d = (centres * centres).sum(1)[None, :] - 2 * z @ centres.T
        assign = d.argmin(1)
        counts = np.bincount(assign, minlength=len(centres)).astype(np.float32)
        sums = np.stack([np.bincount(assign, z[:, j], len(centres)) for j in range(z.shape[1])], 1)
        used = counts > 0
        centres[used] = sums[used] / counts[used, None]
    return _components(assign.reshape(h, w))


def _components(labels: np.ndarray) -> np.ndarray:
    """Connected (4-neighbour) pieces of equal labels, numbered 0..K-1: min-label propagation with
    pointer jumping."""
    h, w = labels.shape
    ids = np.arange(h * w).reshape(h, w)
    right = labels[:, :-1] == labels[:, 1:]
    down = labels[:-1] == labels[1:]
    while True:
        m = ids.copy()
        m[:, :-1] = np.where(right, np.minimum(m[:, :-1], ids[:, 1:]), m[:, :-1])
        m[:, 1:] = np.where(right, np.minimum(m[:, 1:], ids[:, :-1]), m[:, 1:])
        m[:-1] = np.where(down, np.minimum(m[:-1], ids[1:]), m[:-1])
        m[1:] = np.where(down, np.minimum(m[1:], ids[:-1]), m[1:])
        flat = m.ravel()
        m = flat[flat].reshape(h, w)
        if np.array_equal(m, ids):
            break
        ids = m
    return _absorb_specks(np.unique(ids, return_inverse=True)[1].reshape(h, w))


def _absorb_specks(labels: np.ndarray) -> np.ndarray:
    """Pieces under SPECK pixels take the label of a neighbouring pixel of a larger piece (a few sweeps),
    then all are renumbered 0..K-1."""
    for _ in range(4):
        small = np.bincount(labels.ravel())[labels] < SPECK
        if not small.any():
            break
        out = labels.copy()
        for here, there in (
            (np.s_[:, :-1], np.s_[:, 1:]),
            (np.s_[:, 1:], np.s_[:, :-1]),
            (np.s_[:-1], np.s_[1:]),
            (np.s_[1:], np.s_[:-1]),
        ):
            take = small[here] & ~small[there]
            out[here] = np.where(take, labels[there], out[here])
        labels = out
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


# -- hierarchical grouping ------------------------------------------------------------------------------


def _histograms(labels: np.ndarray, values: np.ndarray, bins: int, weights=None) -> np.ndarray:
    """Per region, L1-normalised histograms of each channel's bins, concatenated: [K, channels * bins]."""
    k = int(labels.max()) + 1
    channels = values.shape[-1]
    index = (labels[..., None] * channels + np.arange(channels)) * bins + values
    flat = np.bincount(index.ravel(), None if weights is None else weights.ravel(), k * channels * bins)
    hist = flat.reshape(k, channels * bins)
    return hist / np.maximum(hist.sum(1, keepdims=True), 1e-9)


def _group(labels: np.ndarray, space: np.ndarray, texture, weights) -> np.ndarray:
    """Boxes (xyxy, pixels, right/bottom exclusive) of every region of the hierarchy."""
    h, w = labels.shape
    k = int(labels.max()) + 1
    colour = _histograms(
        labels, np.minimum((space * COLOUR_BINS).astype(np.int64), COLOUR_BINS - 1), COLOUR_BINS
    )
    orient = _histograms(labels, texture[0], ORIENT_BINS, texture[1])
    size = np.bincount(labels.ravel(), minlength=k).astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    box = np.stack([np.full(k, w), np.full(k, h), np.zeros(k), np.zeros(k)], 1).astype(np.int64)
    np.minimum.at(box[:, 0], labels.ravel(), xx.ravel())
    np.minimum.at(box[:, 1], labels.ravel(), yy.ravel())
    np.maximum.at(box[:, 2], labels.ravel(), xx.ravel() + 1)
    np.maximum.at(box[:, 3], labels.ravel(), yy.ravel() + 1)
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1].ravel(), labels[1:].ravel()], 1),
        ]
    )
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], 1)
    pairs = pairs[np.unique(pairs[:, 0] * k + pairs[:, 1], return_index=True)[1]]
    capacity = 2 * k
    colours = np.zeros((capacity, colour.shape[1]), dtype=np.float32)
    orients = np.zeros((capacity, orient.shape[1]), dtype=np.float32)
    sizes = np.zeros(capacity)
    boxes = np.zeros((capacity, 4), dtype=np.int64)
    colours[:k], orients[:k], sizes[:k], boxes[:k] = colour, orient, size, box
    neighbours: list[set[int]] = [set() for _ in range(k)]
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    whole = float(h * w)
    wc, wt, ws, wf = weights

    def similarity(a, b: np.ndarray) -> np.ndarray:
        """Similarity of regions a and b (arrays of region indices, or a single index against many)."""
        lo = np.minimum(boxes[a, :2], boxes[b, :2])
        hi = np.maximum(boxes[a, 2:], boxes[b, 2:])
        joint = sizes[a] + sizes[b]
        s = ws * (1 - joint / whole) + wf * (1 - ((hi - lo).prod(-1) - joint) / whole)
        if wc:
            s = s + wc / 3 * np.minimum(colours[a], colours[b]).sum(-1)
        if wt:
            s = s + wt / 3 * np.minimum(orients[a], orients[b]).sum(-1)
        return s

    heap = list(
        zip(
            (-similarity(pairs[:, 0], pairs[:, 1])).tolist(),
            pairs[:, 0].tolist(),
            pairs[:, 1].tolist(),
            strict=True,
        )
    )
    heapq.heapify(heap)
    alive = np.zeros(capacity, dtype=bool)
    alive[:k] = True
    new = k
    while heap:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        alive[a] = alive[b] = False
        fa, fb = sizes[a], sizes[b]
        sizes[new] = fa + fb
        colours[new] = (colours[a] * fa + colours[b] * fb) / (fa + fb)
        orients[new] = (orients[a] * fa + orients[b] * fb) / (fa + fb)
        boxes[new, :2] = np.minimum(boxes[a, :2], boxes[b, :2])
        boxes[new, 2:] = np.maximum(boxes[a, 2:], boxes[b, 2:])
        alive[new] = True
        around = (neighbours[a] | neighbours[b]) - {a, b}
        neighbours.append(around)
        for n in around:
            neighbours[n] -= {a, b}
            neighbours[n].add(new)
        if around:
            others = np.fromiter(around, dtype=np.int64, count=len(around))
            for sim, n in zip((-similarity(new, others)).tolist(), others.tolist(), strict=True):
                heapq.heappush(heap, (sim, new, n))
        new += 1
    boxes = boxes[:new]
    return np.asarray(boxes, dtype=np.int64)


# -- objectness --------------------------------------------------------------------------------------------


def _integral(onehot: np.ndarray) -> np.ndarray:
    """[C, H, W] -> [C, H + 1, W + 1] summed-area tables."""
    c, h, w = onehot.shape
    out = np.zeros((c, h + 1, w + 1), dtype=np.float32)
    out[:, 1:, 1:] = onehot.cumsum(1).cumsum(2)
    return out


def _box_sums(table: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """[C, H+1, W+1] table, [B, 4] integer boxes -> [C, B] sums inside each box."""
    x0, y0, x1, y1 = xyxy.T
    return table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]


def _straddling(labels: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """1 - (pixels of superpixels cut by the box, the smaller side of each cut) / box area."""
    k = int(labels.max()) + 1
    onehot = np.zeros((k, *labels.shape), dtype=np.float32)
    onehot[labels, *np.indices(labels.shape)] = 1
    inside = _box_sums(_integral(onehot), xyxy)
    size = onehot.sum((1, 2))[:, None]
    cut = np.minimum(inside, size - inside).sum(0)
    box_area = ((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])).astype(np.float64)
    return np.clip(1 - cut / box_area, 0, 1)


def _contrast(rgb: np.ndarray, xyxy: np.ndarray, levels: int = 4) -> np.ndarray:
    """Chi-square distance (0..1) between the box's quantised colours and those of a surrounding ring
    (the box grown by half its size, clipped to the image); 0 where there is no surround."""
    h, w, _ = rgb.shape
    q = np.minimum((rgb * levels).astype(np.int64), levels - 1)
    code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    onehot = np.zeros((levels**3, h, w), dtype=np.float32)
    onehot[code, *np.indices((h, w))] = 1
    table = _integral(onehot)
    inner = _box_sums(table, xyxy)
    bw, bh = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    grown = np.stack(
        [
            np.maximum(xyxy[:, 0] - bw // 4, 0),
            np.maximum(xyxy[:, 1] - bh // 4, 0),
            np.minimum(xyxy[:, 2] + bw // 4, w),
            np.minimum(xyxy[:, 3] + bh // 4, h),
        ],
        1,
    )
    ring = _box_sums(table, grown) - inner
    a = inner / np.maximum(inner.sum(0), 1)
    b = ring / np.maximum(ring.sum(0), 1)
    chi = 0.5 * ((a - b) ** 2 / np.maximum(a + b, 1e-9)).sum(0)
    return np.where(ring.sum(0) > 0, chi, 0.0)
