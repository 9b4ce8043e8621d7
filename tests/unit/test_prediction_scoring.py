"""Prediction ids that sort newest first, and the review scores computed when a prediction is made."""

import uuid

import pytest

from cvcore import layout
from functions.prediction import scoring
from tests.support import images as imgs


def test_prediction_ids_carry_their_time_and_sort_newest_first():
    ids = [layout.new_prediction_id(ms) for ms in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000)]
    assert sorted(ids) == ids[::-1]
    for ms, pid in zip((1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000), ids, strict=True):
        parsed = uuid.UUID(pid)
        assert str(parsed) == pid and parsed.version == 8 and parsed.variant == uuid.RFC_4122
        assert layout.prediction_time_ms(pid) == ms
        assert layout.prediction_time_key(ms) <= pid < layout.prediction_time_key(ms - 1)
        assert (
            layout.oldest_first_time_key(ms)
            <= layout.oldest_first_key(pid)
            < layout.oldest_first_time_key(ms + 1)
        )
    assert sorted(layout.oldest_first_key(i) for i in ids) == [layout.oldest_first_key(i) for i in ids]
    assert all(layout.oldest_first_key(i) > layout.OLDEST_FIRST > i for i in ids)
    assert len({layout.new_prediction_id(5) for _ in range(100)}) == 100
    with pytest.raises(ValueError):
        layout.prediction_image(layout.new_id(), "../x")


def probs(*values):
    return [{"probability": v, "tagId": f"t{i}"} for i, v in enumerate(values)]


def test_uncertainty_and_margin():
    sure, unsure = probs(0.98, 0.01, 0.01), probs(1 / 3, 1 / 3, 1 / 3)
    u, m = scoring.uncertainty_and_margin("classification", "Multiclass", sure)
    assert u < 0.15 and m == pytest.approx(0.97)
    u, m = scoring.uncertainty_and_margin("classification", "Multiclass", unsure)
    assert u == pytest.approx(1.0) and m == pytest.approx(0.0)
    u, m = scoring.uncertainty_and_margin("classification", "Multilabel", probs(0.99, 0.5, 0.02))
    assert u == pytest.approx(1.0) and m == pytest.approx(0.0)
    u, _ = scoring.uncertainty_and_margin("classification", "Multilabel", probs(0.99, 0.01))
    assert u < 0.1
    assert scoring.uncertainty_and_margin("detection", None, probs(0.01, 0.02)) == (0.0, 1.0)
    u, m = scoring.uncertainty_and_margin("detection", None, probs(0.9, 0.45))
    assert u > 0.95 and m == pytest.approx(0.1)


def test_signatures_find_near_duplicates():
    a = imgs.photo_image(1, size=(640, 480))
    near = a.resize((320, 240))
    other = imgs.photo_image(2, size=(640, 480))
    assert scoring.distance(scoring.signature(a), scoring.signature(near)) <= 6
    assert scoring.distance(scoring.signature(a), scoring.signature(other)) > 12
