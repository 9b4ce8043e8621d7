"""One image through a loaded model -> Custom Vision's predictions, most probable first.

Decoding and normalisation are cvcore.imaging's; the model run is cvcore.inference.predict, the same code
the edge container of a DockerFile export runs (what the API answers is what the evaluation measured).
"""

from __future__ import annotations

from cvcore import inference

from .session_cache import LoadedModel


def predict_image(model: LoadedModel, image) -> list[dict]:
    """Predictions for an RGB PIL image."""
    return inference.predict(model.session, model.sidecar, image)


def predict_bytes(model: LoadedModel, data: bytes) -> list[dict]:
    """Predictions for uploaded bytes (checked like any image, up to the 4 MB prediction limit, decoded at
    the scale the model needs: cvcore.inference.decode)."""
    return predict_image(model, inference.decode(data, model.sidecar))
