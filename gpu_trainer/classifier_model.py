"""The exported classifier: frozen backbone features, power- and z-normalised (Standardiser), a linear head
and the "unlike anything seen" gate (classification.py's module docstring has the recipes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

SHRINK = 0.1  # variance shrinkage in the standardiser (fraction of the mean variance)
POWER_EPS = 1e-4


def signed_sqrt(x: Tensor) -> Tensor:
    """Power normalisation sign(x) * (sqrt(|x| + eps) - sqrt(eps)): smooth at 0, so fine-tuning can backprop."""
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + POWER_EPS) - math.sqrt(POWER_EPS))


def signed_sqrt_np(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.sqrt(np.abs(x) + POWER_EPS) - math.sqrt(POWER_EPS))


class ClassifierModel(nn.Module):
    """extractor -> signed sqrt -> standardise -> linear -> /T -> softmax|sigmoid -> x gate -> label order."""

    # Buffers (register_buffer in __init__), named here so their type is Tensor rather than nn.Module's
    # Tensor | Module attribute lookup.
    mean: Tensor
    scale: Tensor
    weight: Tensor
    bias: Tensor
    inv_temperature: Tensor
    out_index: Tensor
    bank: Tensor
    gate_centre: Tensor
    gate_width: Tensor

    def __init__(
        self,
        extractor: nn.Module,
        mean: Tensor,
        scale: Tensor,
        weight: Tensor,
        bias: Tensor,
        *,
        multilabel: bool,
        regular: int,
        out_index: list[int],
        temperature: float = 1.0,
        bank: Tensor | None = None,
        gate_centre: float = -1.0,
        gate_width: float = 0.05,
        gate_dims: int | None = None,
    ):
        super().__init__()
        self.extractor = extractor
        self.multilabel, self.regular = bool(multilabel), int(regular)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("scale", scale.float().clone())
        self.register_buffer("weight", weight.float().clone())
        self.register_buffer("bias", bias.float().clone())
        self.register_buffer("inv_temperature", torch.tensor(1.0 / float(temperature)))
        self.register_buffer("out_index", torch.tensor(out_index, dtype=torch.long))
        self.use_gate = bank is not None and len(bank) > 0
        self.gate_dims = int(gate_dims or weight.shape[1])  # the leading (globally pooled) values it compares
        self.register_buffer(
            "bank",
            (bank if bank is not None and self.use_gate else torch.zeros(1, self.gate_dims)).float().clone(),
        )
        self.register_buffer("gate_centre", torch.tensor(float(gate_centre)))
        self.register_buffer("gate_width", torch.tensor(float(gate_width)))

    def standardised(self, features: Tensor) -> Tensor:
        return (signed_sqrt(features) - self.mean) * self.scale

    def from_features(self, features: Tensor) -> Tensor:
        z = self.standardised(features)
        logits = (z @ self.weight.t() + self.bias) * self.inv_temperature
        if self.multilabel:
            p = torch.sigmoid(logits)
        else:
            p = torch.softmax(logits, dim=1)[:, : self.regular]  # an implicit background column is dropped
        if self.use_gate:
            zg = z[:, : self.gate_dims]
            zn = zg / zg.norm(dim=1, keepdim=True).clamp_min(1e-8)
            sim = (zn @ self.bank.t()).max(dim=1).values
            p = p * torch.sigmoid((sim - self.gate_centre) / self.gate_width).unsqueeze(1)
        if self.multilabel:
            none = torch.prod(1 - p, dim=1, keepdim=True)
        else:
            none = (1 - p.sum(dim=1, keepdim=True)).clamp_min(0)
        return torch.cat([p, none], dim=1).index_select(1, self.out_index)

    def forward(self, x: Tensor) -> Tensor:
        return self.from_features(self.extractor(x))


@dataclass
class Standardiser:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardiser:
        f = signed_sqrt_np(features.astype(np.float64))
        mean = f.mean(axis=0)
        std = f.std(axis=0)
        # shrink tiny variances towards the average one: near-constant dimensions of a small set would
        # otherwise be blown up into noise (for the head and for the gate similarity alike)
        var = std**2 + SHRINK * float(np.mean(std**2)) + 1e-12
        return cls(mean.astype(np.float32), (1.0 / np.sqrt(var)).astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((signed_sqrt_np(features.astype(np.float64)) - self.mean) * self.scale).astype(np.float32)
