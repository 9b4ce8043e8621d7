"""Object detection in the browser: draw, move, resize and delete boxes; region proposals as one-click boxes;
the overlap threshold slider; quick test draws boxes; a stored prediction's boxes corrected and added."""

import io
import time

import pytest
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from cvcore import layout
from tests.portal.test_workflow import wait_until
from tests.support import scenes

pytestmark = pytest.mark.portal
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
TAGS = ("cat", "cup")


def jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector(sdk):
    project = sdk.create_project(f"boxes-{layout.new_id()[:8]}", domain_id=DETECTION)
    tags = {name: sdk.create_tag(project.id, name) for name in TAGS}
    entries = [
        ImageFileCreateEntry(
            name=s.key,
            contents=jpeg(s.image),
            regions=[
                Region(tag_id=tags[TAGS[b[0]]].id, left=b[1], top=b[2], width=b[3], height=b[4])
                for b in s.boxes
            ],
        )
        for s in scenes.dataset(TAGS, 15, seed=21)
    ]
    assert sdk.create_images_from_files(project.id, ImageFileCreateBatch(images=entries)).is_batch_successful
    iteration = sdk.train_project(project.id)
    deadline = time.monotonic() + 300
    while (it := sdk.get_iteration(project.id, iteration.id)).status not in ("Completed", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert it.status == "Completed", it.training_error_details
    yield project, {n: t.id for n, t in tags.items()}, it
    sdk.delete_project(project.id)


def regions_of(sdk, project_id, image_id):
    return sdk.get_images_by_ids(project_id, image_ids=[image_id])[0].regions or []


def test_draw_move_resize_delete_and_accept_a_proposal(page, sdk, detector, shot):
    project, tags, _ = detector
    scene = scenes.scene(9_999, TAGS, first=0)
    added = sdk.create_images_from_data(project.id, jpeg(scene.image)).images[0].image
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images?filter=untagged")
    page.locator(f".tile[data-id='{added.id}'] img").click()
    stage = page.locator("dialog[open] .stage img")
    stage.wait_for()
    page.wait_for_function("() => document.querySelector('dialog[open] .stage img').complete")
    page.locator("dialog[open]").get_by_label("Tag for new boxes").select_option(tags["cup"])
    b = stage.bounding_box()
    # Draw: from 10%,10% to 50%,60% of the image.
    page.mouse.move(b["x"] + 0.1 * b["width"], b["y"] + 0.1 * b["height"])
    page.mouse.down()
    page.mouse.move(b["x"] + 0.5 * b["width"], b["y"] + 0.6 * b["height"], steps=6)
    page.mouse.up()
    page.get_by_text("Box saved.").wait_for()
    [r] = regions_of(sdk, project.id, added.id)
    assert r.tag_id == tags["cup"]
    assert (round(r.left, 2), round(r.top, 2), round(r.width, 2), round(r.height, 2)) == pytest.approx(
        (0.1, 0.1, 0.4, 0.5), abs=0.02
    )
    # Move: drag the box's middle by +20% x.
    box = page.locator("dialog[open] .box.editable")
    bb = box.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
    page.mouse.down()
    page.mouse.move(bb["x"] + bb["width"] / 2 + 0.2 * b["width"], bb["y"] + bb["height"] / 2, steps=6)
    page.mouse.up()
    wait_until(
        lambda: (rs := regions_of(sdk, project.id, added.id)) and abs(rs[0].left - 0.3) < 0.02, timeout=10
    )
    # Resize: drag the bottom-right handle back by 10% in both directions.
    handle = page.locator("dialog[open] .box.editable .handle.se")
    hb = handle.bounding_box()
    cx, cy = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 0.1 * b["width"], cy - 0.1 * b["height"], steps=6)
    page.mouse.up()
    wait_until(
        lambda: (
            (rs := regions_of(sdk, project.id, added.id))
            and abs(rs[0].width - 0.3) < 0.02
            and abs(rs[0].height - 0.4) < 0.02
            and abs(rs[0].left - 0.3) < 0.02
        ),
        timeout=10,
    )
    # Keyboard: the selected box moves with the arrow keys.
    page.locator("dialog[open] .box.editable").focus()
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    wait_until(lambda: abs(regions_of(sdk, project.id, added.id)[0].top - 0.15) < 0.015, timeout=10)
    shot(page, "regions")
    # Delete it.
    page.locator("dialog[open] .box-del").click()
    page.get_by_text("Box deleted.").wait_for()
    assert regions_of(sdk, project.id, added.id) == []
    # Region proposals: dashed boxes, one click makes a region with the chosen tag.
    page.locator("dialog[open] [data-action=proposals]").click()
    proposal = page.locator("dialog[open] .box.proposal").last  # the smallest lies on top
    proposal.wait_for()
    assert page.locator("dialog[open] .box.proposal").count() >= 2
    proposal.click()
    page.get_by_text("Box saved.").wait_for()
    [r] = regions_of(sdk, project.id, added.id)
    assert r.tag_id == tags["cup"]
    page.locator("dialog[open]").get_by_role("button", name="Close").click()


def test_overlap_slider_quick_test_boxes_and_promoting_corrected_boxes(
    page, sdk, detector, stack, tmp_path, shot
):
    project, tags, it = detector
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/performance/{it.id}")
    page.locator(".metric-ap").wait_for(timeout=30_000)

    def shown():
        return [
            page.locator(f".{m} .metric-value").inner_text()
            for m in ("metric-precision", "metric-recall", "metric-ap")
        ]

    def expected(t, o):
        perf = sdk.get_iteration_performance(project.id, it.id, threshold=t, overlap_threshold=o)
        return [f"{100 * v:.1f}%" for v in (perf.precision, perf.recall, perf.average_precision)]

    wait_until(lambda: shown() == expected(0.5, 0.3), timeout=10)
    page.get_by_label("Overlap threshold").fill("90")
    wait_until(lambda: shown() == expected(0.5, 0.9), timeout=10)
    assert expected(0.5, 0.9) != expected(0.5, 0.3)
    assert page.locator(".heldout-image").count() == sdk.get_image_performance_count(project.id, it.id) > 0
    assert page.locator(".heldout-image.wrong").count() >= 1  # at IoU 0.9 some boxes miss

    page.locator(".tabs a", has_text="Quick Test").click()
    probe = tmp_path / "scene.jpg"
    probe.write_bytes(jpeg(scenes.scene(4_242, TAGS, first=1).image))
    page.get_by_label("Upload an image").set_input_files(str(probe))
    page.locator(".quicktest-result").wait_for(timeout=30_000)
    page.get_by_label("Show boxes above").fill("10")
    assert page.locator(".quicktest-result .box.predicted").count() >= 1
    shot(page, "quicktest-detection")

    page.locator(".tabs a", has_text="Predictions").click()
    page.locator(".prediction-tile").first.wait_for(timeout=30_000)
    page.locator(".prediction-tile .open-prediction").first.click()
    dlg = page.locator("dialog[open]")
    n = dlg.locator(".review-boxes li").count()
    assert n >= 1
    dlg.get_by_label("Tag of box 1").select_option(tags["cat"])
    dlg.get_by_role("button", name="Add to training set").click()
    page.get_by_text("1 added to the training set").wait_for()
    newest = sdk.get_tagged_images(project.id, order_by="Newest", take=1)[0]
    assert len(newest.regions) == n and newest.regions[0].tag_id == tags["cat"]
