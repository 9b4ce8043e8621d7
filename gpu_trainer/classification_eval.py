"""The classifier's calibration and evaluation, both on the chosen recipe's out-of-fold predictions: one
temperature, the "unlike anything seen" gate, a recommended threshold per tag (Calibration), and
evaluation.json, each evaluated image's fold, truth and scores with the performance at 0.5 (evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvcore import artifacts, metrics

from . import calibration
from .cv import Problem, has_regular, regular_probabilities
from .recipe_search import Candidate


@dataclass
class Calibration:
    """Fit on the chosen candidate's out-of-fold predictions: one temperature, the gate, a threshold per tag;
    `full` holds the exported probabilities (every label, gate applied) of the `evaluated` images."""

    temperature: float
    gate_centre: float
    gate_width: float
    thresholds: list[float]  # recommended, per label
    evaluated: np.ndarray
    full: np.ndarray
    oof_regular: np.ndarray  # [n, regular tags]: out-of-fold probabilities, NaN where not evaluated

    @classmethod
    def fit(cls, best: Candidate, problem: Problem) -> Calibration:
        evaluated = np.flatnonzero(best.evaluated)
        oof_logits = best.logits[evaluated]
        temperature = calibration.fit_temperature(oof_logits, problem.y[evaluated], problem.multilabel)
        known = evaluated[has_regular(problem, evaluated)]
        gate_centre, gate_width = calibration.fit_gate(best.similarity[known])
        probs_regular = regular_probabilities(oof_logits, problem, temperature)
        gate_values = calibration.gate(best.similarity[evaluated], gate_centre, gate_width)
        probs_regular = probs_regular * gate_values[:, None]
        none = (
            np.prod(1 - probs_regular, axis=1)
            if problem.multilabel
            else np.clip(1 - probs_regular.sum(1), 0, 1)
        )
        full = np.concatenate([probs_regular, none[:, None]], axis=1)[:, problem.out_index()]
        truth_matrix = np.zeros((len(evaluated), len(problem.labels)), dtype=bool)
        for row, i in enumerate(evaluated):
            truth_matrix[row, problem.truth[i]] = True
            if not problem.truth[i] and problem.negative_index is not None:
                truth_matrix[row, problem.negative_index] = True
        oof_regular = np.full((len(problem.y), len(problem.regular)), np.nan)
        oof_regular[evaluated] = regular_probabilities(oof_logits, problem, temperature)
        return cls(
            temperature,
            gate_centre,
            gate_width,
            calibration.thresholds(full, truth_matrix),
            evaluated,
            full,
            oof_regular,
        )


def evaluation(examples, problem: Problem, folds, k: int, best: Candidate, cal: Calibration):
    """(evaluation.json: each evaluated image's fold, truth and out-of-fold scores, with the performance at
    threshold 0.5; that performance's summary, for the sidecar)."""
    evaluation = {
        "task": artifacts.CLASSIFICATION,
        "classification_type": "Multilabel" if problem.multilabel else "Multiclass",
        "labels": [
            {"index": lab.index, "tag_id": lab.tag_id, "name": lab.name, "type": lab.type}
            for lab in problem.labels
        ],
        "folds": k,
        "images": [
            {
                "key": examples[i].key,
                "fold": int(folds[i]),
                "truth": (
                    [*problem.truth[i]]
                    or ([problem.negative_index] if problem.negative_index is not None else [])
                ),
                "scores": [round(float(v), 6) for v in cal.full[row]],
            }
            for row, i in enumerate(cal.evaluated)
        ],
        "recipe": best.describe(),
    }
    performance = metrics.classification_performance(evaluation, 0.5)
    summary = {
        key: performance[key]
        for key in (
            "precision",
            "precisionStdDeviation",
            "recall",
            "recallStdDeviation",
            "averagePrecision",
            "top1",
            "top5",
        )
    }
    summary["perTagPerformance"] = performance["perTagPerformance"]
    evaluation["performance_at_0.5"] = summary
    return evaluation, summary
