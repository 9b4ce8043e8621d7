"""The detector network: a backbone trunk, a light CenterNet-style head on the stride-16 map (with the
stride-32 map added through a small FPN step), and a decode that exports to ONNX.

Head outputs per stride-16 cell: a heatmap logit per label (object centres) and 4 regression values
(dx, dy: the centre's offset from the cell centre in cells; log width, log height normalised to the
image). Decode (inside the graph): 3x3 max-pool peak extraction on the heatmap logits, top-K over labels x
cells, boxes clipped to 0..1, class-wise "fast NMS" at `nms_iou` (a box goes when a better-scored box of
the same label overlaps it by more than nms_iou), score = sigmoid(a * logit + b) (Platt calibration
fitted on out-of-fold detections, so that a score estimates the probability that the box is right;
a = 1, b = 0 is the plain sigmoid), kept rows (score >= 1e-4) first in descending order; suppressed and
padded rows are all zero (score, box and label). cvcore.boxes.postprocess applies greedy NMS at the same IoU
after the graph, which is then a no-op.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

STRIDE = 16
TOP_K = 100  # detections the graph outputs per image
TTF_ALPHA = 0.54  # gaussian extent relative to the box (TTFNet)
NOT_A_PEAK = -1.0e4  # added to the logits of cells that are not a 3x3 local maximum
MIN_OUTPUT_SCORE = 1e-4  # rows scoring less are dropped in the graph (padding)


def split_trunk(backbone) -> tuple[nn.Sequential, nn.Sequential]:
    """(low, high): low = the backbone's stages up to its stride-16 tap, high = the following stride-32
    stages without the final channel-expanding stage (its 1x1 conv to 1280 adds little for a head and
    costs most of the stride-32 memory)."""
    taps = getattr(backbone, "taps", None) or backbone._taps
    stages = list(backbone.stages)
    t16, t32 = taps[16], taps[32]
    high = stages[t16 + 1 : t32] if t32 - t16 > 1 else stages[t16 + 1 : t32 + 1]
    return nn.Sequential(*stages[: t16 + 1]), nn.Sequential(*high)


def channels(module: nn.Module, cin: int, size: int = 64) -> int:
    with torch.no_grad():
        was = module.training
        module.eval()
        device = next(module.parameters()).device
        out = module(torch.zeros(1, cin, size, size, device=device))
        module.train(was)
    return int(out.shape[1])


class SepConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, GroupNorm (no batch statistics to go wrong on tiny batches), ReLU."""

    def __init__(self, cin: int, cout: int):
        groups = 8 if cout % 8 == 0 else 1
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.GroupNorm(groups, cout),
            nn.ReLU(inplace=True),
        )


class Head(nn.Module):
    def __init__(self, c16: int, c32: int, num_labels: int, width: int = 96, depth: int = 2):
        super().__init__()
        self.lat16 = nn.Sequential(nn.Conv2d(c16, width, 1, bias=False), nn.GroupNorm(8, width))
        self.lat32 = nn.Sequential(nn.Conv2d(c32, width, 1, bias=False), nn.GroupNorm(8, width))
        self.tower = nn.Sequential(*[SepConv(width, width) for _ in range(depth)])
        self.heat = nn.Sequential(SepConv(width, width), nn.Conv2d(width, num_labels, 1))
        self.reg = nn.Sequential(SepConv(width, width), nn.Conv2d(width, 4, 1))
        heat_out, reg_out = cast(nn.Conv2d, self.heat[-1]), cast(nn.Conv2d, self.reg[-1])
        assert heat_out.bias is not None and reg_out.bias is not None  # both made with a bias
        nn.init.constant_(heat_out.bias, -2.19)  # prior 0.1 (CenterNet)
        nn.init.normal_(heat_out.weight, std=0.01)
        nn.init.normal_(reg_out.weight, std=0.01)
        with torch.no_grad():
            reg_out.bias.copy_(torch.tensor([0.0, 0.0, math.log(0.25), math.log(0.25)]))

    def forward(self, c16: Tensor, c32: Tensor) -> tuple[Tensor, Tensor]:
        up = F.interpolate(self.lat32(c32), size=c16.shape[-2:], mode="nearest")
        x = F.relu(self.lat16(c16) + up)
        x = self.tower(x)
        return self.heat(x), self.reg(x)


def regression_boxes(reg: Tensor) -> Tensor:
    """[N, 4, H, W] raw regression -> [N, 4, H, W] normalised (cx, cy, w, h)."""
    n, _, h, w = reg.shape
    ys = (torch.arange(h, dtype=reg.dtype, device=reg.device) + 0.5).view(1, h, 1)
    xs = (torch.arange(w, dtype=reg.dtype, device=reg.device) + 0.5).view(1, 1, w)
    cx = (xs + reg[:, 0]) / w
    cy = (ys + reg[:, 1]) / h
    size = torch.exp(reg[:, 2:4].clamp(-7.0, 1.0))
    return torch.stack([cx, cy, size[:, 0], size[:, 1]], dim=1)


class Decode(nn.Module):
    """Heatmap logits + regression -> (boxes [N, K, 4] ltwh, scores [N, K], labels [N, K] int64)."""

    def __init__(self, top_k: int = 100, nms_iou: float = 0.5, calibration: tuple[float, float] = (1.0, 0.0)):
        super().__init__()
        self.top_k, self.nms_iou = top_k, float(nms_iou)
        self.calibration: Tensor
        self.register_buffer("calibration", torch.tensor(calibration, dtype=torch.float32))

    def forward(self, heat_logits: Tensor, reg: Tensor):
        n, c, h, w = heat_logits.shape
        k = min(self.top_k, c * h * w)
        # peaks on the logits (sigmoid saturates to exact ties at 1.0 in float32; logits do not)
        peaks = F.max_pool2d(heat_logits, 3, stride=1, padding=1)
        masked = heat_logits + (peaks != heat_logits).to(heat_logits.dtype) * NOT_A_PEAK
        logits, index = torch.topk(masked.reshape(n, c * h * w), k, dim=1)
        labels = torch.div(index, h * w, rounding_mode="floor")
        cell = index - labels * (h * w)
        boxes = regression_boxes(reg).reshape(n, 4, h * w)
        picked = torch.gather(boxes, 2, cell.unsqueeze(1).expand(n, 4, k))  # [N, 4, K] cx cy w h
        x0 = (picked[:, 0] - picked[:, 2] / 2).clamp(0.0, 1.0)
        y0 = (picked[:, 1] - picked[:, 3] / 2).clamp(0.0, 1.0)
        x1 = (picked[:, 0] + picked[:, 2] / 2).clamp(0.0, 1.0)
        y1 = (picked[:, 1] + picked[:, 3] / 2).clamp(0.0, 1.0)
        xyxy = torch.stack([x0, y0, x1, y1], dim=2)  # [N, K, 4]
        # class-wise fast NMS: a box goes when a better (earlier) box of its label overlaps it by > nms_iou
        area = (x1 - x0) * (y1 - y0)
        lt = torch.maximum(xyxy[:, :, None, :2], xyxy[:, None, :, :2])
        rb = torch.minimum(xyxy[:, :, None, 2:], xyxy[:, None, :, 2:])
        inter = (rb - lt).clamp(min=0.0).prod(dim=3)
        overlap = inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-9)
        same = (labels[:, :, None] == labels[:, None, :]).to(overlap.dtype)
        earlier = torch.triu(torch.ones(k, k, dtype=overlap.dtype, device=overlap.device), diagonal=1)
        worst = (overlap * same * earlier).amax(dim=1)  # [N, K]: max IoU with a better box of its label
        keep = (worst <= self.nms_iou) & (logits > NOT_A_PEAK / 2) & (area > 0)
        scores = torch.sigmoid(self.calibration[0] * logits + self.calibration[1])  # monotone: order kept
        keep = keep & (scores >= MIN_OUTPUT_SCORE)  # (a denormal score is 0 to some runtimes, not others)
        # kept rows first, in their (descending) order, then the dropped ones: integer keys, no ties among
        # kept rows, so every runtime gives the same rows in the same order
        rank = (k - torch.arange(k, device=logits.device)).to(logits.dtype).unsqueeze(0)
        _, order = torch.topk(rank * keep.to(logits.dtype), k, dim=1)
        live = torch.gather(keep, 1, order)
        scores = torch.gather(scores, 1, order) * live.to(scores.dtype)
        xyxy = torch.gather(xyxy, 1, order.unsqueeze(2).expand(n, k, 4))
        labels = torch.gather(labels, 1, order) * live.to(labels.dtype)
        boxes = torch.cat([xyxy[:, :, :2], xyxy[:, :, 2:] - xyxy[:, :, :2]], dim=2)
        boxes = boxes * live.unsqueeze(2).to(boxes.dtype)
        return boxes, scores, labels


class Detector(nn.Module):
    """Normalised NCHW image batch -> (boxes, scores, labels) per cvcore/artifacts.py."""

    def __init__(self, low: nn.Module, high: nn.Module, head: Head, decode: Decode):
        super().__init__()
        self.low, self.high, self.head, self.decode = low, high, head, decode

    def raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c16 = self.low(x)
        return self.head(c16, self.high(c16))

    def forward(self, x: Tensor):
        return self.decode(*self.raw(x))


# -- targets and loss ---------------------------------------------------------------------------------


def targets(boxes: list[tuple[int, float, float, float, float]], num_labels: int, h: int, w: int):
    """One view's boxes -> (heatmap [C, H, W], box targets [4, H, W] as normalised x0 y0 x1 y1, regression
    weights [H, W]). TTFNet-style: an elliptical gaussian per box (peak 1 at its centre cell); the cells
    where that gaussian is >= 0.2 regress the box, weighted by it; smaller boxes win shared cells."""
    heat = torch.zeros(num_labels, h, w)
    box_t = torch.zeros(4, h, w)
    weight = torch.zeros(h, w)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, w) + 0.5
    for label, left, top, bw, bh in sorted(boxes, key=lambda b: -(b[3] * b[4])):
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = (left + bw / 2) * w, (top + bh / 2) * h
        sx = max(TTF_ALPHA * bw * w / 6, 0.35)
        sy = max(TTF_ALPHA * bh * h / 6, 0.35)
        g = torch.exp(-((xs - cx) ** 2) / (2 * sx * sx) - ((ys - cy) ** 2) / (2 * sy * sy))
        ci, cj = min(int(cy), h - 1), min(int(cx), w - 1)
        g[ci, cj] = 1.0
        heat[int(label)] = torch.maximum(heat[int(label)], g)
        region = g >= 0.2
        box_t[:, region] = torch.tensor([left, top, left + bw, top + bh]).view(4, 1)
        weight[region] = g[region]
    return heat, box_t, weight


def focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of object centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0).to(logits.dtype)
    log_p, log_1p = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos_loss = -((1 - p) ** 2) * log_p * pos
    neg_loss = -((1 - target) ** 4) * (p**2) * log_1p * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def giou_loss(reg: Tensor, box_t: Tensor, weight: Tensor) -> Tensor:
    """Weighted generalised-IoU loss of the decoded boxes at the regression cells."""
    pred = regression_boxes(reg)  # [N, 4, H, W] cx cy w h
    px0, py0 = pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2
    px1, py1 = pred[:, 0] + pred[:, 2] / 2, pred[:, 1] + pred[:, 3] / 2
    tx0, ty0, tx1, ty1 = box_t.unbind(1)
    iw = (torch.minimum(px1, tx1) - torch.maximum(px0, tx0)).clamp(min=0)
    ih = (torch.minimum(py1, ty1) - torch.maximum(py0, ty0)).clamp(min=0)
    inter = iw * ih
    union = (px1 - px0) * (py1 - py0) + (tx1 - tx0) * (ty1 - ty0) - inter
    iou = inter / union.clamp(min=1e-9)
    hull_w = torch.maximum(px1, tx1) - torch.minimum(px0, tx0)
    hull = hull_w * (torch.maximum(py1, ty1) - torch.minimum(py0, ty0))
    giou = iou - (hull - union) / hull.clamp(min=1e-9)
    return ((1 - giou) * weight).sum() / weight.sum().clamp(min=1e-6)
