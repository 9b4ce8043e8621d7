"""End to end: the review loop through the official SDK's CustomVisionTrainingClient against the local host (a
real process) on real Azurite, with a model the trainer worker really trained (a cat vs a coffee cup):
stored predictions queried newest / oldest / suggested with continuation tokens, promoted into the training
set and deleted; quick tests; the smart labeler's suggestions; refusals with Custom Vision's codes."""

import io
import time

import pytest
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    PredictionQueryTag,
    PredictionQueryToken,
    SuggestedTagAndRegionQueryToken,
)
from PIL import Image

from functions.prediction import scoring
from tests.e2e import test_sdk_prediction as prediction_e2e
from tests.e2e.test_sdk_prediction import CAT, CUP, photo
from tests.support import images as imgs

pytestmark = pytest.mark.e2e
env = prediction_e2e.env  # the fixture: a cat/cup model the trainer really trained, published as "prod"


def blend(n: int, quality: int = 90) -> bytes:
    """Half cat, half cup: a picture the model is unsure about; each n is another picture."""
    mixed = Image.blend(
        imgs.photo_image(CAT + 7 * (3 * n + 2), (320, 240)),
        imgs.photo_image(CUP + 7 * (3 * n + 2), (320, 240)),
        0.5,
    )
    out = io.BytesIO()
    mixed.save(out, "JPEG", quality=quality)
    return out.getvalue()


def look_alike_groups(records: dict) -> dict:
    """prediction id -> a group of predictions whose pictures are within 10 bits of each other (dHash)."""
    group: dict = {}
    for i in sorted(records):
        near = [
            g for j, g in group.items() if scoring.distance(records[i].signature, records[j].signature) <= 10
        ]
        group[i] = near[0] if near else i
    return group


def sdk_error(call) -> str:
    """The code of the Training API error the call raises."""
    with pytest.raises(CustomVisionErrorException) as err:
        call()
    return err.value.error.code


def store(env):
    return env["services"].predictor.store


def tag_ids(env) -> dict:
    return {t.name: t.id for t in env["trainer"].get_tags(env["project"])}


def stored_count(env, n: int, seconds: float = 10.0) -> None:
    """Stored predictions are written just after the reply (functions/prediction/recorder.py)."""
    deadline = time.monotonic() + seconds
    while len(list(store(env).scan(env["project"]))) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(store(env).scan(env["project"]))) == n


def all_pages(trainer, project_id, query):
    ids = []
    while True:
        result = trainer.query_predictions(project_id, query)
        ids += [r.id for r in result.results]
        if not result.token.continuation:
            return ids
        query = result.token  # the reply's token asks for the next page


def test_review_stored_predictions(env):
    trainer, predictor, p = env["trainer"], env["predictor"], env["project"]
    # pictures the model is unsure about; one arrives four times (a camera that keeps sending one scene), and
    # neighbouring crops of the others are look-alikes too
    burst = [predictor.classify_image(p, "prod", blend(0, quality=q)).id for q in (95, 90, 85, 80)]
    others = [predictor.classify_image(p, "prod", blend(n)).id for n in range(1, 8)]
    stored_count(env, 11)

    newest = all_pages(trainer, p, PredictionQueryToken(order_by="Newest", max_count=3))
    assert newest == (burst + others)[::-1]
    assert all_pages(trainer, p, PredictionQueryToken(order_by="Oldest", max_count=4)) == burst + others
    cat = tag_ids(env)["cat"]
    confident_cats = all_pages(
        trainer, p, PredictionQueryToken(tags=[PredictionQueryTag(id=cat, min_threshold=0.9)])
    )
    assert set(confident_cats) <= set(newest)

    first = trainer.query_predictions(p, PredictionQueryToken(order_by="Suggested", max_count=8))
    records = {r.id: r for r in store(env).scan(p)}
    scenes = look_alike_groups(records)
    k = len(set(scenes.values()))
    plain = sorted(records, key=lambda i: (-records[i].uncertainty, i))
    distinct_plain, distinct_suggested = (
        len({scenes[i] for i in ids[:k]}) for ids in (plain, [r.id for r in first.results])
    )
    assert 2 <= k <= 8 and distinct_suggested == k and distinct_plain <= k, (
        k,
        distinct_suggested,
        distinct_plain,
    )
    suggested = [r.id for r in first.results] + all_pages(trainer, p, first.token)
    assert sorted(suggested) == sorted(newest)

    # one joins the training set as a cat; another is deleted
    summary = trainer.create_images_from_predictions(
        p, ImageIdCreateBatch(images=[ImageIdCreateEntry(id=burst[0])], tag_ids=[cat])
    )
    assert summary.is_batch_successful and summary.images[0].status == "OK"
    assert summary.images[0].source_url == burst[0] and summary.images[0].image.tags[0].tag_id == cat
    trainer.delete_prediction(p, [burst[1]])
    left = all_pages(trainer, p, PredictionQueryToken(order_by="Newest"))
    assert burst[0] not in left and burst[1] not in left and len(left) == 9
    assert trainer.get_tagged_image_count(p) == 13

    assert sdk_error(lambda: trainer.delete_prediction(p, [])) == "BadRequestPredictionIdsMissing"
    assert (
        sdk_error(lambda: trainer.query_predictions(p, PredictionQueryToken(continuation="v1.bogus")))
        == "BadRequestPredictionInvalidQueryParameters"
    )
    assert (
        sdk_error(lambda: trainer.query_predictions(p, PredictionQueryToken(max_count=1000)))
        == "BadRequestPredictionResultsExceededCount"
    )
    gone = trainer.create_images_from_predictions(
        p, ImageIdCreateBatch(images=[ImageIdCreateEntry(id=burst[1])])
    )
    assert not gone.is_batch_successful and gone.images[0].status == "ErrorSource"


def test_quick_test(env):
    trainer, p, it = env["trainer"], env["project"], env["iteration"]
    before = len(list(store(env).scan(p)))
    result = trainer.quick_test_image(p, photo(CAT, 30), iteration_id=it, store=False)
    assert result.iteration == it and result.predictions[0].tag_name == "cat"
    assert trainer.quick_test_image(p, photo(CUP, 30)).predictions[0].tag_name == "cup"  # latest Completed
    training_image = trainer.get_tagged_images(p, tag_ids=[tag_ids(env)["cup"]], take=1)[0]
    by_url = trainer.quick_test_image_url(p, training_image.original_image_uri, iteration_id=it)
    assert by_url.predictions[0].tag_name == "cup"
    stored_count(env, before + 2)
    assert sdk_error(lambda: trainer.quick_test_image(p, imgs.truncated_jpeg())) == "BadRequestImageFormat"
    assert (
        sdk_error(lambda: trainer.quick_test_image_url(p, "http://169.254.169.254/latest/meta-data"))
        == "BadRequestImageUrl"
    )
    assert (
        sdk_error(
            lambda: trainer.quick_test_image(
                p, photo(CAT, 31), iteration_id="00000000-0000-0000-0000-000000000001"
            )
        )
        == "NotFoundIteration"
    )


def test_smart_labeler(env):
    trainer, p, it, tags = env["trainer"], env["project"], env["iteration"], tag_ids(env)
    batch = ImageFileCreateBatch(
        images=[
            ImageFileCreateEntry(name=f"u{n}.jpg", contents=c)
            for n, c in enumerate((photo(CAT, 40), photo(CUP, 40), blend(20)))
        ]
    )
    untagged = [x.image.id for x in trainer.create_images_from_files(p, batch).images]
    suggestions = trainer.suggest_tags_and_regions(p, it, untagged)
    assert [s.id for s in suggestions] == untagged
    assert suggestions[0].predictions[0].tag_name == "cat" and suggestions[1].predictions[0].tag_name == "cup"
    assert suggestions[2].prediction_uncertainty > max(
        suggestions[0].prediction_uncertainty, suggestions[1].prediction_uncertainty
    )
    counts = trainer.query_suggested_image_count(p, it, tag_ids=[tags["cat"], tags["cup"]], threshold=0.7)
    assert counts[tags["cat"]] >= 1 and counts[tags["cup"]] >= 1
    query, seen = (
        SuggestedTagAndRegionQueryToken(
            tag_ids=[tags["cat"]], threshold=0.0, max_count=1, sort_by="UncertaintyAscending"
        ),
        [],
    )
    while query is not None:
        page = trainer.query_suggested_images(p, it, query)
        seen += page.results
        query = page.token if page.token.continuation else None
    assert (
        sorted(r.id for r in seen) == sorted(untagged) and seen[-1].id == untagged[2]
    )  # the blend: least sure
    assert seen[0].width == 320 and [x.tag_id for x in seen[0].predictions] == [tags["cat"]]
    assert [r.prediction_uncertainty for r in seen] == sorted(r.prediction_uncertainty for r in seen)
