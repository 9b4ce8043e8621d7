"""The Custom Vision workflow in the browser, end to end on the local stack: upload real photos (with broken
ones among them), tag, train, read Performance at a threshold, publish, quick test, promote a stored
prediction into the training set, and delete. Classification; detection boxes are in test_detection.py."""

import time

import pytest
import requests

from cvcore import layout
from tests.support import images as imgs

pytestmark = pytest.mark.portal


def wait_until(check, timeout=120, every=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("condition not met in time")


def photos(tmp_path, first, n, size=(320, 240)):
    out = []
    for i in range(first, first + n):
        path = tmp_path / f"photo-{i}.jpg"
        path.write_bytes(imgs.photo_jpeg(i, size))
        out.append(str(path))
    return out


@pytest.fixture
def project(sdk):
    p = sdk.create_project(f"flow-{layout.new_id()[:8]}", classification_type="Multiclass")
    yield p
    try:
        sdk.delete_project(p.id)
    except Exception:
        pass


def test_upload_of_64_files_with_3_broken_shows_61_ok_and_3_reasons(page, sdk, project, tmp_path, shot):
    files = photos(tmp_path, 300, 61)
    broken = {
        "truncated.jpg": imgs.truncated_jpeg(),
        "noise.jpg": imgs.corrupt_bytes(),
        "notes.png": imgs.not_an_image(),
    }
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
        files.insert(len(files) // 2, str(tmp_path / name))
    sdk.create_tag(project.id, "ignored")
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images")
    page.locator("#add-images-input").set_input_files(files)
    summary = page.locator(".upload-summary")
    summary.filter(has_text="61 uploaded, 3 failed").wait_for(timeout=60_000)
    reasons = page.locator(".upload-failures li").all_inner_texts()
    assert len(reasons) == 3
    assert {r.split(":")[0] for r in reasons} == set(broken)
    assert all("ErrorImage" in r or "Error" in r for r in reasons), reasons
    assert sdk.get_image_count(project.id) == 61
    page.locator(".images-toolbar").get_by_text("61 images").wait_for()
    assert "Traceback" not in page.content()
    shot(page, "upload-results")


def test_classification_workflow_end_to_end(page, sdk, stack, project, tmp_path, shot):
    base = page.url.split("#")[0]
    page.goto(base + f"#/p/{project.id}/images")
    # Two tags made in the rail; photos uploaded with a tag chosen on upload.
    for name in ("astronaut", "coffee"):
        page.get_by_label("New tag name").fill(name)
        page.get_by_role("button", name="Add tag").click()
        page.locator(".tag-rail a", has_text=name).wait_for()
    tags = {t.name: t.id for t in sdk.get_tags(project.id)}
    page.get_by_label("astronaut", exact=True).check()
    page.locator("#add-images-input").set_input_files(photos(tmp_path, 0, 6))
    page.locator(".upload-summary", has_text="6 uploaded").wait_for(timeout=60_000)
    assert sdk.get_tagged_image_count(project.id, tag_ids=[tags["astronaut"]]) == 6
    # Then untagged uploads, tagged afterwards by selecting many in the grid.
    page.get_by_label("astronaut", exact=True).uncheck()
    coffee_files = []
    for i in range(6):
        p = tmp_path / f"coffee-{i}.jpg"
        p.write_bytes(imgs.photo_jpeg(10_000 + i, (320, 240)))
        coffee_files.append(str(p))
    from PIL import Image

    for i, f in enumerate(coffee_files):  # a different subject: the coffee photo, shifted crops
        im = imgs._scaled("coffee.png", (360, 270), 0).crop((i * 6, i * 4, i * 6 + 320, i * 4 + 240))
        im.save(f, quality=90)
    assert Image.open(coffee_files[0]).size == (320, 240)
    page.locator("#add-images-input").set_input_files(coffee_files)
    page.locator(".upload-summary", has_text="6 uploaded").wait_for(timeout=60_000)
    page.locator(".tag-rail a", has_text="Untagged").click()
    page.locator(".images-toolbar", has_text="6 images untagged").wait_for()
    tiles = page.locator(".tile")
    tiles.first.locator(".pick").click()
    tiles.nth(5).locator(".pick").click(modifiers=["Shift"])
    page.get_by_text("6 selected").wait_for()
    page.get_by_label("Tag to add").select_option(tags["coffee"])
    page.get_by_role("button", name="Tag selected", exact=True).click()
    page.locator(".images-toolbar", has_text="0 images untagged").wait_for()
    assert sdk.get_untagged_image_count(project.id) == 0
    assert sdk.get_tagged_image_count(project.id, tag_ids=[tags["coffee"]]) == 6
    shot(page, "images")

    # Train from the dialog; the page follows Queued -> Completed by itself.
    page.locator("[data-action=train]").click()
    page.locator("dialog[open]").get_by_role("button", name="Train").click()
    page.locator(".train-status, .metrics").first.wait_for()
    shot(page, "train")
    page.locator(".metric-precision").wait_for(timeout=180_000)
    iteration = sdk.get_iterations(project.id)[0]
    assert iteration.status == "Completed"

    # The threshold slider recomputes through get_iteration_performance.
    def shown():
        return [
            page.locator(f".{m} .metric-value").inner_text()
            for m in ("metric-precision", "metric-recall", "metric-ap")
        ]

    def expected(t):
        perf = sdk.get_iteration_performance(project.id, iteration.id, threshold=t)
        return [f"{100 * v:.1f}%" for v in (perf.precision, perf.recall, perf.average_precision)]

    wait_until(lambda: shown() == expected(0.5), timeout=10)
    before = shown()
    slider = page.get_by_label("Probability threshold")
    slider.fill("97")
    wait_until(lambda: shown() == expected(0.97), timeout=10)
    assert page.locator(".slider output").first.inner_text() == "97%"
    wrong = page.locator(".heldout-image.wrong").count()
    held = page.locator(".heldout-image").count()
    # every image the evaluation held out (a CPU budget may leave folds out), not a sample of them
    assert held == sdk.get_image_performance_count(project.id, iteration.id) > 0
    assert page.locator(".wrong-count").inner_text().startswith(f"{wrong} of {held}")
    slider.fill("1")
    wait_until(lambda: shown() == expected(0.01), timeout=10)
    assert expected(0.97) != expected(0.01) or before != shown()
    slider.fill("50")
    wait_until(lambda: shown() == expected(0.5), timeout=10)
    shot(page, "performance")

    # Rename, publish, make default.
    page.get_by_role("button", name="Rename").click()
    page.locator("dialog[open]").get_by_label("Iteration name").fill("first model")
    page.locator("dialog[open]").get_by_role("button", name="Rename").click()
    page.locator(".iterations", has_text="first model").wait_for()
    assert sdk.get_iteration(project.id, iteration.id).name == "first model"
    page.get_by_role("button", name="Publish").click()
    page.locator("dialog[open]").get_by_label("Model name").fill("flowmodel")
    page.locator("dialog[open]").get_by_role("button", name="Publish").click()
    page.locator(".iterations", has_text="published: flowmodel").wait_for()
    assert sdk.get_iteration(project.id, iteration.id).publish_name == "flowmodel"

    # Prediction URL panel: its URL works as shown, with the Prediction-Key header.
    page.get_by_role("button", name="Prediction URL").click()
    url = page.locator("dialog[open] .endpoint-image").inner_text()
    assert url == f"{stack.url}/customvision/v3.0/Prediction/{project.id}/classify/iterations/flowmodel/image"
    assert "curl -X POST" in page.locator("dialog[open] pre").first.inner_text()
    shot(page, "prediction-url")
    page.locator("dialog[open]").get_by_role("button", name="Close").click()
    reply = requests.post(
        url,
        headers={"Prediction-Key": stack.prediction_key, "Content-Type": "application/octet-stream"},
        data=imgs.photo_jpeg(41, (320, 240)),
        timeout=30,
    )
    assert reply.status_code == 200 and reply.json()["predictions"][0]["tagName"] in tags

    # Quick test a photo: the table shows what the API returns.
    page.locator(".tabs a", has_text="Quick Test").click()
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(imgs.photo_jpeg(40, (320, 240)))
    page.get_by_label("Upload an image").set_input_files(str(probe))
    page.locator(".predictions-table tbody tr").first.wait_for(timeout=30_000)
    rows = page.locator(".predictions-table tbody tr").all_inner_texts()
    assert len(rows) == 2 and {r.split("\t")[0] for r in rows} == set(tags)
    shot(page, "quicktest")

    # That quick test is a stored prediction: promote it under a corrected tag.
    page.locator(".tabs a", has_text="Predictions").click()
    page.locator(".prediction-tile").first.wait_for(timeout=30_000)
    assert page.locator(".prediction-tile").count() == 2  # the Prediction URL call and the quick test
    page.get_by_label("Sort by").select_option("Newest")
    tile = page.locator(".prediction-tile").first  # newest: the quick test
    page.wait_for_timeout(500)
    assert "%" in tile.get_attribute("title")
    tile.locator(".open-prediction").click()
    dlg = page.locator("dialog[open]")
    for name in tags:
        dlg.get_by_label(name, exact=True).uncheck()
    dlg.get_by_label("coffee", exact=True).check()
    shot(page, "predictions")
    dlg.get_by_role("button", name="Add to training set").click()
    page.get_by_text("1 added to the training set").wait_for()
    assert sdk.get_tagged_image_count(project.id, tag_ids=[tags["coffee"]]) == 7

    # Unpublish and delete the iteration from the rail.
    page.locator(".tabs a", has_text="Performance").click()
    page.get_by_role("button", name="Unpublish").click()
    page.locator("dialog[open]").get_by_role("button", name="Unpublish").click()
    page.locator(".iterations", has_text="published").wait_for(state="detached")
    assert not sdk.get_iteration(project.id, iteration.id).publish_name
    page.get_by_role("button", name="Delete").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete iteration").click()
    page.get_by_text("No iterations yet.").wait_for()
    assert sdk.get_iterations(project.id) == []
