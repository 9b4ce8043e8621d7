"""Classification training on real photos (scikit-image's bundled ones): multiclass, multilabel, the Negative tag,
"unlike anything seen" images, the embedding cache, calibration, divergence. Small sets, small images."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image

from cvcore import metrics
from cvcore.artifacts import Label, preprocess
from gpu_trainer import backbones, calibration, classification, cv, finetune
from gpu_trainer.classification import Example, train_classifier
from gpu_trainer.errors import TrainingDiverged
from gpu_trainer.features import MemoryFeatureCache
from tests.support.images import photo_image

torch.set_num_threads(1)

ASTRONAUT, CHELSEA, COFFEE, ROCKET, MOTORCYCLE = 0, 1, 2, 3, 4  # photo_image(i) shows photo i % 7
SIZE = (96, 96)
FAST = dict(budget_seconds=3.0, resolution=128)  # unit tests: the linear recipe only, smaller inputs


def photo(category: int, n: int):
    return photo_image(7 * n + category, SIZE)


def tag(i: int, name: str, type_: str = "Regular") -> Label:
    return Label(index=i, tag_id=f"00000000-0000-0000-0000-{i:012d}", name=name, type=type_)


def probs(result, images) -> np.ndarray:
    with torch.no_grad():
        return result.model(torch.from_numpy(preprocess(images, result.sidecar))).numpy()


@functools.cache
def trained_two_photos():
    """astronaut vs coffee, 6 images each (shared with test_export)."""
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    examples = [Example(photo(ASTRONAUT, j), (0,), f"a{j}") for j in range(6)]
    examples += [Example(photo(COFFEE, j), (1,), f"c{j}") for j in range(6)]
    return train_classifier(examples, labels, multilabel=False, negative_index=None, **FAST), examples


def test_multiclass_learns_and_reports_like_custom_vision():
    result, examples = trained_two_photos()
    new = [photo(ASTRONAUT, 40), photo(COFFEE, 40)]
    p = probs(result, new)
    assert p.shape == (2, 2)
    assert p[0].argmax() == 0 and p[1].argmax() == 1
    assert p[0, 0] > 0.7 and p[1, 1] > 0.7
    sc = result.sidecar
    assert sc.task == "classification" and sc.classification_type == "Multiclass"
    assert sc.input_size == (128, 128) and sc.backbone == "mobilenet_v2"
    assert set(sc.thresholds) == {lab.tag_id for lab in sc.labels}
    assert all(0 < t < 1 for t in sc.thresholds.values())
    assert calibration.T_MIN <= sc.temperature <= calibration.T_MAX
    ev = result.evaluation
    assert ev["folds"] >= 2 and len(ev["images"]) == len(examples)
    assert {im["key"] for im in ev["images"]} == {ex.key for ex in examples}
    perf = metrics.classification_performance(ev, 0.5)
    assert perf["top1"] == 1.0 and perf["averagePrecision"] > 0.95
    assert sc.metrics["top1"] == 1.0 and len(sc.metrics["perTagPerformance"]) == 2
    cfg = result.config
    assert cfg["recipe"] == "linear" and cfg["folds"] == ev["folds"] and cfg["timings"]["total"] > 0
    assert cfg["candidates"][0]["scores_by_c"]


def test_an_image_unlike_every_tag_scores_low_for_all():
    result, _ = trained_two_photos()
    strangers = [photo(CHELSEA, 3), photo(ROCKET, 5), photo(MOTORCYCLE, 7)]
    p = probs(result, strangers)
    assert (p.max(axis=1) < 0.3).all(), p
    known = probs(result, [photo(ASTRONAUT, 50), photo(COFFEE, 50)])
    assert (known.max(axis=1) > 0.7).all(), known


def test_negative_tag_trains_a_background_output():
    labels = [tag(0, "astronaut"), tag(1, "Negative", "Negative"), tag(2, "coffee")]
    examples = [Example(photo(ASTRONAUT, j), (0,), f"a{j}") for j in range(5)]
    examples += [Example(photo(COFFEE, j), (2,), f"c{j}") for j in range(5)]
    examples += [Example(photo(ROCKET, j), (), f"r{j}") for j in range(5)]  # Negative-tagged images
    result = train_classifier(examples, labels, multilabel=False, negative_index=1, **FAST)
    assert result.config["background_class"]
    p = probs(result, [photo(ROCKET, 30), photo(ASTRONAUT, 30), photo(COFFEE, 30)])
    assert p.shape == (3, 3)
    assert p[0, 1] > 0.7 and p[0, [0, 2]].max() < 0.3  # the Negative output carries "none of the others"
    assert p[1].argmax() == 0 and p[2].argmax() == 2
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    perf = metrics.classification_performance(result.evaluation, 0.5)
    assert [t["name"] for t in perf["perTagPerformance"]] == ["astronaut", "coffee"]
    negatives = [im for im in result.evaluation["images"] if im["key"].startswith("r")]
    assert all(im["truth"] == [1] for im in negatives)


def _side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    out = Image.new("RGB", (SIZE[0] * 2, SIZE[1]))
    out.paste(a, (0, 0)), out.paste(b, (SIZE[0], 0))
    return out.resize(SIZE)


def test_multilabel_uses_independent_sigmoids():
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    examples = []
    for j in range(5):  # placements spread over the photos, so the pairs vary as much as new ones will
        examples.append(Example(photo(ASTRONAUT, 7 * j), (0,), f"a{j}"))
        examples.append(Example(photo(COFFEE, 7 * j), (1,), f"c{j}"))
        examples.append(
            Example(_side_by_side(photo(ASTRONAUT, 7 * j + 3), photo(COFFEE, 7 * j + 3)), (0, 1), f"b{j}")
        )
    result = train_classifier(examples, labels, multilabel=True, negative_index=None, **FAST)
    assert result.sidecar.classification_type == "Multilabel"
    p = probs(result, [_side_by_side(photo(ASTRONAUT, 12), photo(COFFEE, 12)), photo(ASTRONAUT, 33)])
    assert p[0, 0] > 0.5 and p[0, 1] > 0.5
    assert p[1, 0] > 0.5 and p[1, 1] < 0.5
    perf = metrics.classification_performance(result.evaluation, 0.5)
    assert perf["averagePrecision"] > 0.8


def test_retraining_after_adding_images_only_embeds_the_new_ones():
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    cache = MemoryFeatureCache()
    first = [
        Example(photo(c, j), (t,), f"k{c}-{j}") for j in range(4) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]
    r1 = train_classifier(first, labels, multilabel=False, negative_index=None, cache=cache, **FAST)
    assert r1.config["embedded_images"] == 8
    more = first + [
        Example(photo(c, j), (t,), f"k{c}-{j}") for j in (4, 5) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]
    r2 = train_classifier(more, labels, multilabel=False, negative_index=None, cache=cache, **FAST)
    assert r2.config["embedded_images"] == 4
    assert len(r2.evaluation["images"]) == 12


def test_quick_retraining_reuses_the_previous_recipe_and_embeds_only_new_images():
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    cache = MemoryFeatureCache()
    first = [
        Example(photo(c, j), (t,), f"w{c}-{j}") for j in range(5) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]
    r1 = train_classifier(first, labels, multilabel=False, negative_index=None, cache=cache, **FAST)
    previous = {**r1.config, "iteration_id": "previous"}
    more = first + [Example(photo(c, 5), (t,), f"w{c}-5") for t, c in enumerate((ASTRONAUT, COFFEE))]
    r2 = train_classifier(
        more, labels, multilabel=False, negative_index=None, cache=cache, warm_start=previous, **FAST
    )
    assert r2.config["warm_start"]["reused"] is True
    assert [(c["backbone"], c["features"]) for c in r2.config["candidates"]] == [
        (r1.config["backbone"], r1.config["features"])
    ]
    assert r2.config["embedded_images"] == 2
    tried = {float(c) for c in r2.config["candidates"][0]["scores_by_c"]}
    assert tried == {r1.config["c"]} == {r2.config["c"]}
    assert len(r2.evaluation["images"]) == 12  # the evaluation still covers every image


@pytest.mark.parametrize(
    "change, reused",
    [
        ({}, True),
        ({"advanced": True}, False),
        ({"n": 200}, False),  # the set doubled: search again
        ({"n": 50}, False),
        ({"tags": 3}, False),
        ({"multilabel": True}, False),
    ],
)
def test_recipe_reuse_only_when_little_changed(change, reused):
    previous = {
        "recipe": "linear",
        "backbone": backbones.names()[0],
        "features": "grid",
        "resolution": 224,
        "c": 0.03,
        "images": 100,
        "tags": 2,
        "multilabel": False,
        "iteration_id": "x",
    }
    args = {"advanced": False, "n": 110, "tags": 2, "multilabel": False, **change}
    recipe, why = classification.reusable_recipe(previous, **args)
    assert (recipe is not None) is reused, why
    if reused:
        assert recipe["features"] == "grid" and recipe["grid"] == (0.03,)
    assert (
        classification.reusable_recipe(
            {**previous, "recipe": "finetune"}, advanced=False, n=110, tags=2, multilabel=False
        )[0]
        is None
    )
    assert classification.reusable_recipe(None, advanced=False, n=110, tags=2, multilabel=False)[0] is None


def test_non_finite_features_raise_training_diverged(monkeypatch):
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    examples = [
        Example(photo(c, j), (t,), f"n{c}-{j}") for j in range(3) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]

    def broken(*args, **kwargs):
        return np.full((len(examples), 8), np.nan, dtype=np.float32)

    monkeypatch.setattr(classification, "embed", broken)
    with pytest.raises(TrainingDiverged):
        train_classifier(examples, labels, multilabel=False, negative_index=None, **FAST)


def test_folds_are_stratified_and_shrink_for_rare_tags():
    strata = np.array([0] * 10 + [1] * 3)
    folds, k = cv.assign_folds(strata, seed=0)
    assert k == 3
    for f in range(k):
        assert (strata[folds == f] == 1).sum() == 1
    big = np.arange(4000) % 4
    folds, k = cv.assign_folds(big, seed=0)
    assert k == 1 and 0.15 < (folds == 0).mean() < 0.25 and set(np.unique(folds)) == {-1, 0}


def test_finetune_keeps_batchnorm_statistics_and_learns():
    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    examples = [
        Example(photo(c, j), (t,), f"f{c}-{j}") for j in range(4) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]
    problem = cv.make_problem(examples, labels, False, None)
    b = backbones.create("mobilenet_v2")
    split = finetune.BackboneSplit(b, unfreeze=2)
    from gpu_trainer.features import images_to_tensor

    base = images_to_tensor([ex.image for ex in examples], b, 64)
    views = finetune.prefix_views(split, base, 2, "cpu", seed=0)
    before = {k: v.clone() for k, v in b.state_dict().items()}
    tail = finetune.finetune_fit(
        split, views, np.arange(len(examples)), problem, c=0.03, epochs=2, lr=1e-3, device="cpu", seed=0
    )
    tuned = tail.state_dict()
    assert any("running_mean" in k for k in tuned)
    for key, value in tuned.items():
        original = before[f"stages.{split.split + int(key.split('.')[0])}.{key.split('.', 1)[1]}"]
        if "running_" in key or "num_batches" in key:
            assert torch.equal(value, original), key  # BN statistics untouched (eval-mode BN)
    assert any(
        not torch.equal(v, before[f"stages.{split.split + int(k.split('.')[0])}.{k.split('.', 1)[1]}"])
        for k, v in tuned.items()
        if "weight" in k
    )
    for key, value in b.state_dict().items():
        assert torch.equal(value, before[key])  # the shared backbone itself is never modified


def test_advanced_search_stays_within_its_budget():
    import time

    labels = [tag(0, "astronaut"), tag(1, "coffee")]
    examples = [
        Example(photo(c, j), (t,), f"s{c}-{j}") for j in range(3) for t, c in enumerate((ASTRONAUT, COFFEE))
    ]
    t = time.monotonic()
    result = train_classifier(
        examples,
        labels,
        multilabel=False,
        negative_index=None,
        advanced=True,
        budget_seconds=6.0,
        resolution=96,
    )
    assert time.monotonic() - t < 40
    assert len(result.config["candidates"]) >= 1 and result.config["training_type"] == "Advanced"


def _multiclass_problem(y: np.ndarray):
    labels = [tag(i, f"t{i}") for i in range(int(y.max()) + 1)]
    examples = [Example(None, (int(c),), f"k{i}") for i, c in enumerate(y)]
    return cv.make_problem(examples, labels, False, None)


def test_score_gain_is_paired_and_its_error_shrinks_with_more_images():
    rng = np.random.default_rng(0)
    for n in (40, 400):
        y = rng.integers(0, 3, n)
        problem = _multiclass_problem(y)
        idx = np.arange(n)
        a = rng.normal(size=(n, 3))
        a[idx, y] += 1.0
        assert cv.score_gain(a, a.copy(), idx, problem) == (
            0.0,
            0.0,
        )  # the same candidate: no gain
        noisy = a + rng.normal(scale=0.8, size=a.shape)  # worse on average, with per-image noise
        gain, se = cv.score_gain(a, noisy, idx, problem)
        assert gain < 0 and se > 0
        better = a.copy()
        better[idx, y] += 2.0
        gain, se_better = cv.score_gain(a, better, idx, problem)
        assert gain > 3 * se_better > 0
    # ten times the images: the error of the same kind of difference drops by about sqrt(10)
    small, large = (
        cv.score_gain(
            *(np.eye(3)[y] * 2 + rng.normal(size=(len(y), 3)) for _ in range(2)),
            np.arange(len(y)),
            _multiclass_problem(y),
        )[1]
        for y in (rng.integers(0, 3, 60), rng.integers(0, 3, 6000))
    )
    assert 5 < small / large < 20


def test_an_example_keeps_what_a_lazy_loader_gives_but_streams_a_streamed_one():
    from PIL import Image

    from gpu_trainer.classification import Example

    calls = []

    def loader():
        calls.append(1)
        return Image.new("RGB", (8, 8))

    kept = Example(loader, (0,), "a")
    assert kept.image is kept.image and len(calls) == 1
    loader.streamed = True
    streamed = Example(loader, (0,), "b")
    assert streamed.image is not streamed.image and len(calls) == 3  # read on every use, none kept
