"""The prediction use case: an image for a published iteration -> Custom Vision's ImagePrediction, stored
for review unless `nostore` was called.

Storing overlaps the model: the model runs on the pool while the image is checked, normalised,
thumbnailed and uploaded; the record (which needs the answer) is inserted last, so a record never names
a missing blob. Errors are cvcore.errors with Custom Vision's codes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from cvcore import artifacts, layout
from cvcore.errors import BadRequest, NotFound
from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, CheckedImage, ImageError, check_image
from cvcore.inference import decode, fetch_image, image_error

from ..domain.records import iso, utcnow
from . import scoring
from .ports import PredictionStore, StoredPrediction
from .predict import predict_image
from .published import Catalog, Published
from .recorder import Recorder
from .session_cache import LoadedModel, ModelCache, ModelUnavailable

log = logging.getLogger(__name__)
MAX_APPLICATION = 64
_OPERATIONS = {artifacts.CLASSIFICATION: "classify", artifacts.DETECTION: "detect"}


@dataclass
class Predictor:
    """What a prediction needs: publish names, loaded models, the store, and a pool (the model runs there
    while the image is being stored)."""

    catalog: Catalog
    models: ModelCache
    store: PredictionStore
    pool: ThreadPoolExecutor
    url_allow_origins: tuple[str, ...] = ()
    recorder: Recorder | None = None  # stores after the reply; None: before it (the record exists on return)


def check_application(application: str | None) -> str:
    application = (application or "").strip()
    if len(application) > MAX_APPLICATION or any(not (c.isalnum() or c in "-_. ") for c in application):
        raise BadRequest(
            "BadRequestPredictionInvalidApplicationName",
            f"application must be at most {MAX_APPLICATION} letters, digits, spaces, '-', '_' or '.'",
        )
    return application


def load_model(models: ModelCache, published: Published) -> LoadedModel:
    try:
        return models.get(published.project.id, published.iteration.id)
    except ModelUnavailable as exc:
        log.error(
            "iteration %s of project %s cannot serve: %s", published.iteration.id, published.project.id, exc
        )
        raise NotFound(
            "ErrorPredictionModelNotFound",
            f"the model of iteration {published.iteration.name!r} cannot be loaded ({exc}); publish "
            "a good iteration under this name",
        ) from None


def predict(
    p: Predictor,
    project_id: str,
    publish_name: str,
    task: str,
    data: bytes | None = None,
    *,
    url=None,
    application: str | None = None,
    store: bool = True,
) -> dict:
    """Predict `data`, or the image at `url`. `task` is what the route promises (artifacts.CLASSIFICATION
    for classify, DETECTION for detect)."""
    application = check_application(application)
    published = p.catalog.resolve(project_id, publish_name)
    if published.task != task:
        raise BadRequest(
            "BadRequestNotSupported",
            f"{publish_name!r} is a {published.task} model; call {_OPERATIONS[published.task]}, "
            f"not {_OPERATIONS[task]}",
        )
    if data is None:
        data = fetch_image(url, p.url_allow_origins)
    return predict_published(
        p, published, data, application=application, store=store, publish_name=publish_name
    )


def predict_published(
    p: Predictor,
    published: Published,
    data: bytes,
    *,
    application: str = "",
    store: bool = True,
    publish_name: str = "",
) -> dict:
    """Predict with a resolved iteration: the published one, or any Completed iteration for the Training
    API's quick test (Published(project, iteration, published.task_of(iteration)), publish_name "")."""
    if not data:
        raise BadRequest("BadRequestImageStream", "the request holds no image data")
    model = load_model(p.models, published)
    created = utcnow()
    prediction_id = layout.new_prediction_id(int(created.timestamp() * 1000))
    record = StoredPrediction(
        id=prediction_id,
        project_id=published.project.id,
        iteration_id=published.iteration.id,
        publish_name=publish_name,
        application=application,
        created=created,
        task=published.task,
        predictions=[],
    )
    try:
        if not store:
            predictions = predict_image(model, decode(data, model.sidecar))
        elif p.recorder is not None:
            image, predictions = _infer(model, data)
            p.recorder.submit(lambda: _store(p, model, data, record, image, predictions))
        else:
            predictions = _infer_and_store(p, model, data, record)
    except ImageError as exc:
        raise image_error(exc) from None
    return {
        "id": prediction_id,
        "project": record.project_id,
        "iteration": record.iteration_id,
        "created": iso(created),
        "predictions": predictions,
    }


def _infer(model: LoadedModel, data: bytes):
    image = decode(data, model.sidecar)
    return image, predict_image(model, image)


def _store(
    p: Predictor, model: LoadedModel, data: bytes, record: StoredPrediction, image, predictions
) -> None:
    """After the reply (Predictor.recorder): the checked image and thumbnail, then the record."""
    checked = check_image(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
    _put_images(p, record, checked)
    _complete(record, model, checked, image, predictions)
    try:
        p.store.add(record)
    except BaseException:
        p.store.delete(record.project_id, [record.id])
        raise


def _put_images(p: Predictor, record: StoredPrediction, checked: CheckedImage) -> None:
    """The image and its thumbnail: check_image makes one unless told not to, and a stored prediction always
    has one (the review page shows it), so a missing one is a bug here, not a bad upload."""
    if checked.thumbnail is None:
        raise AssertionError("check_image was asked for a thumbnail and returned none")
    p.store.put_images(record.project_id, record.id, checked.data, checked.content_type, checked.thumbnail)


def _complete(record: StoredPrediction, model: LoadedModel, checked, image, predictions) -> None:
    record.predictions = predictions
    record.uncertainty, record.margin = scoring.uncertainty_and_margin(
        record.task, model.sidecar.classification_type, predictions
    )
    record.signature, record.width, record.height = scoring.signature(image), checked.width, checked.height
    record.content_type = checked.content_type


def _infer_and_store(p: Predictor, model: LoadedModel, data: bytes, record: StoredPrediction) -> list[dict]:
    """The model runs on the pool while this thread checks, thumbnails and uploads the image (the two
    uploads at once); the record, which needs the answer, goes in last. A failure leaves nothing behind."""
    inference = p.pool.submit(_infer, model, data)
    uploading = False
    try:
        checked = check_image(data, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
        uploading = True
        _put_images(p, record, checked)
        image, predictions = inference.result()
        _complete(record, model, checked, image, predictions)
        p.store.add(record)
        return predictions
    except BaseException:
        wait([inference])
        if uploading:
            try:
                p.store.delete(record.project_id, [record.id])
            except Exception:
                log.warning(
                    "prediction %s: its uploaded image could not be removed", record.id, exc_info=True
                )
        raise
