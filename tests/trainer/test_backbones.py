"""Backbones: offline weights load strictly, ImageNet predictions make sense, shapes follow the spec."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from gpu_trainer import backbones
from gpu_trainer.features import MemoryFeatureCache, embed, images_to_tensor
from tests.support.images import photo_image

torch.set_num_threads(1)

CAT_CLASSES = range(281, 286)  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_names_and_unknown_name():
    assert backbones.names()[0] == "mobilenet_v2" == backbones.DEFAULT
    assert "efficientnet_lite0" in backbones.names()
    with pytest.raises(ValueError) as err:
        backbones.create("resnet9000")
    assert "mobilenet_v2" in str(err.value) and "efficientnet_lite0" in str(err.value)


def test_weights_come_from_installed_packages():
    for path in (backbones.mobilenet_v2_weights_path(), backbones.efficientnet_lite0_weights_path()):
        assert os.path.exists(path) and os.path.getsize(path) > 10_000_000


def _chelsea(size=224):
    import skimage.data
    from PIL import Image

    return Image.fromarray(skimage.data.chelsea()).resize((size, size), Image.BILINEAR)


@pytest.mark.parametrize(
    "name,imagenet",
    [
        ("mobilenet_v2", backbones.mobilenet_v2_imagenet),
        ("efficientnet_lite0", backbones.efficientnet_lite0_imagenet),
    ],
)
def test_pretrained_weights_recognise_a_cat(name, imagenet):
    spec = backbones.create(name, pretrained=False).spec
    net = imagenet(pretrained=True).eval()  # strict=True inside: every key matches the layout
    x = images_to_tensor([_chelsea()], backbones.create(name, pretrained=False), 224)
    assert spec.mean == tuple(spec.mean) and len(spec.std) == 3
    with torch.no_grad():
        top = int(net(x).argmax())
    assert top in CAT_CLASSES


@pytest.mark.parametrize("name", backbones.names())
def test_shapes_follow_the_spec(name):
    b = backbones.create(name)
    assert not b.training
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        pooled = b(x)
        maps = b.feature_maps(x)
    assert pooled.shape == (2, b.spec.feature_dim)
    assert set(maps) == {16, 32}
    assert maps[16].shape == (2, b.spec.map_channels[16], 6, 6)
    assert maps[32].shape == (2, b.spec.map_channels[32], 3, 3)
    # the pooled features are the stride-32 map averaged
    assert torch.allclose(pooled, maps[32].mean(dim=(2, 3)), atol=1e-5)


def test_backbone_features_are_what_the_pretrained_network_computes():
    b = backbones.create("mobilenet_v2")
    net = backbones.mobilenet_v2_imagenet().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits = net.classifier(b(x))
        assert torch.allclose(logits, net(x), atol=1e-4)


def test_embed_uses_the_cache_and_only_computes_missing_keys():
    b = backbones.create("mobilenet_v2")
    images = [photo_image(i, (64, 64)) for i in range(3)]
    cache = MemoryFeatureCache()
    first = embed(b, images[:2], ["a", "b"], cache, resolution=64)
    assert first.shape[0] == 2 and len(cache) == 2
    calls = []
    more = embed(
        b, images, ["a", "b", "c"], cache, resolution=64, progress=lambda done, total: calls.append(total)
    )
    assert calls == [1]  # only "c" was computed
    assert np.allclose(more[:2], first, atol=1e-6)
    assert len(cache) == 3
    # another resolution is another cache entry
    embed(b, images[:1], ["a"], cache, resolution=96)
    assert len(cache) == 4
