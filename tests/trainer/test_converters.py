"""gpu_trainer/converters.agreement: what counts as the same answer as the ONNX model."""

import numpy as np
import pytest

from cvcore import artifacts
from gpu_trainer.converters import TOLERANCE, agreement
from gpu_trainer.export import ExportMismatch


def test_classifier_outputs_must_match_and_keep_top1():
    ref = {"probabilities": np.array([[0.7, 0.3], [0.2, 0.8]], np.float32)}
    ok = agreement(ref, {"probabilities": ref["probabilities"] + 1e-5}, artifacts.CLASSIFICATION)
    assert ok["top1_agreement"] == 1.0 and ok["max_abs_diff"] <= 2e-5 and ok["samples"] == 2
    with pytest.raises(ExportMismatch, match="differ"):
        agreement(ref, {"probabilities": ref["probabilities"] + 5 * TOLERANCE}, artifacts.CLASSIFICATION)
    with pytest.raises(ExportMismatch, match="top-1"):
        agreement(ref, {"probabilities": ref["probabilities"][:, ::-1].copy()}, artifacts.CLASSIFICATION)


def _detections(rows):
    boxes = np.array([[r[2:] for r in rows]], np.float32)
    return {
        "boxes": boxes,
        "scores": np.array([[r[1] for r in rows]], np.float32),
        "labels": np.array([[r[0] for r in rows]], np.int64),
    }


def test_detections_may_swap_places_but_must_pair_up():
    a = [(0, 0.9, 0.1, 0.1, 0.3, 0.3), (1, 0.6, 0.5, 0.5, 0.2, 0.2), (0, 0.01, 0.0, 0.0, 0.1, 0.1)]
    swapped = [a[1], a[0], (1, 0.02, 0.7, 0.7, 0.1, 0.1)]  # order and sub-floor candidates differ: fine
    found = agreement(_detections(a), _detections(swapped), artifacts.DETECTION)
    assert (found["detections"], found["matched"]) == (2, 2) and found["max_score_diff"] == 0
    moved = [a[0], (1, 0.6, 0.5, 0.52, 0.2, 0.2), a[2]]
    with pytest.raises(ExportMismatch, match="no counterpart"):
        agreement(_detections(a), _detections(moved), artifacts.DETECTION)
