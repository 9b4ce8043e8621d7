"""The training-image library in the browser: Smart Labeler suggestions accepted and rejected (in the grid and
in the image editor), and the virtualised grid, which keeps only the rows in view in the page."""

import time

import pytest
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

from cvcore import layout
from tests.support import images as imgs

pytestmark = pytest.mark.portal


def upload(sdk, project_id, first, n, tag_ids=None, size=(96, 72)):
    for start in range(first, first + n, 64):
        entries = [ImageFileCreateEntry(name=f"p{i}.jpg", contents=imgs.photo_jpeg(i, size), tag_ids=tag_ids)
                   for i in range(start, min(first + n, start + 64))]
        assert sdk.create_images_from_files(project_id, ImageFileCreateBatch(images=entries)).is_batch_successful


@pytest.fixture(scope="module")
def trained(sdk):
    project = sdk.create_project(f"smart-{layout.new_id()[:8]}", classification_type="Multiclass")
    tags = {name: sdk.create_tag(project.id, name).id for name in ("left", "right")}
    upload(sdk, project.id, 0, 6, [tags["left"]], (160, 120))
    upload(sdk, project.id, 500, 6, [tags["right"]], (160, 120))
    iteration = sdk.train_project(project.id)
    deadline = time.monotonic() + 300
    while (it := sdk.get_iteration(project.id, iteration.id)).status not in ("Completed", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert it.status == "Completed", it.training_error_details
    upload(sdk, project.id, 1_000, 3, None, (160, 120))
    yield project, tags
    sdk.delete_project(project.id)


def test_smart_labeler_suggestions_in_the_grid_and_the_editor(page, sdk, trained, shot):
    project, tags = trained
    names = {v: k for k, v in tags.items()}
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images?filter=untagged")
    page.locator(".images-toolbar", has_text="3 images untagged").wait_for()
    page.locator("[data-action=suggest]").click()
    chips = page.locator(".tile .suggestion")
    chips.first.wait_for()
    tile = page.locator(".tile").first
    image_id = tile.get_attribute("data-id")
    first_chip = tile.locator(".suggestion").first
    suggested = first_chip.inner_text().split()[0]
    assert suggested in tags
    shot(page, "smart-labeler")
    # Reject one suggestion: it goes, nothing is tagged.
    second = tile.locator(".suggestion").nth(1)
    rejected = second.inner_text().split()[0]
    second.locator(".reject").click()
    page.locator(f".tile[data-id='{image_id}'] .suggestion", has_text=rejected).wait_for(state="detached")
    assert sdk.get_untagged_image_count(project.id) == 3
    # Accept the other: the image is tagged with it and leaves the Untagged filter.
    page.locator(f".tile[data-id='{image_id}'] .suggestion .accept").first.click()
    page.locator(".images-toolbar", has_text="2 images untagged").wait_for()
    [im] = sdk.get_images_by_ids(project.id, image_ids=[image_id])
    assert [names[t.tag_id] for t in im.tags] == [suggested]
    # In the editor: an untagged image lists suggested tags with Accept / Reject.
    page.locator(".tile img").first.click()
    dlg = page.locator("dialog[open]")
    items = dlg.locator(".suggest-list li")
    items.first.wait_for()
    opened = sdk.get_untagged_images(project.id)
    before = len(opened)
    choice = items.first.inner_text().split()[0]
    items.first.get_by_role("button", name="Accept").click()
    dlg.locator(".chips li", has_text=choice).wait_for()
    dlg.get_by_role("button", name="Close").click()
    page.locator(".images-toolbar", has_text=f"{before - 1} images untagged").wait_for()
    assert sdk.get_untagged_image_count(project.id) == before - 1


def test_the_grid_is_virtualised_and_scrolls_to_the_last_image(page, sdk):
    project = sdk.create_project(f"grid-{layout.new_id()[:8]}")
    try:
        upload(sdk, project.id, 0, 640)
        page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images")
        page.locator(".images-toolbar", has_text="640 images").wait_for()
        page.locator(".tile").first.wait_for()
        in_dom = page.locator(".tile").count()
        assert 0 < in_dom <= 150, in_dom
        # Thumbnails, not originals.
        src = page.locator(".tile img").first.get_attribute("src")
        assert "thumbnail" in src.lower() or "thumb" in src.lower(), src
        page.evaluate("() => { const s = document.querySelector('.grid-scroll'); s.scrollTop = s.scrollHeight; }")
        page.locator(".tile[data-index='639']").wait_for(timeout=15_000)
        assert page.locator(".tile").count() <= 150
        assert page.locator(".tile[data-index='0']").count() == 0
        # Keyboard: the last tile takes focus and Space selects it.
        page.locator(".tile[data-index='639']").focus()
        page.keyboard.press("Space")
        page.get_by_text("1 selected").wait_for()
    finally:
        sdk.delete_project(project.id)
