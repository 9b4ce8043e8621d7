"""The training-image library in the browser: Smart Labeler suggestions accepted and rejected (in the grid and
in the image editor), and the virtualised grid, which keeps only the rows in view in the page."""

import base64

import pytest

from cvcore import layout
from tests.portal.conftest import upload
from tests.support import images as imgs

pytestmark = pytest.mark.portal


def test_smart_labeler_suggestions_in_the_grid_and_the_editor(page, sdk, classifier, shot):
    project, tags, _ = classifier
    names = {v: k for k, v in tags.items()}
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images?filter=untagged")
    page.locator(".images-toolbar", has_text="3 images untagged").wait_for()
    page.locator("[data-action=suggest]").click()
    # The first suggestion request loads the model (slow on a busy runner); an error toast ends the wait early
    # and names what went wrong.
    page.locator(".tile .suggestion, .toast.error").first.wait_for(timeout=60_000)
    errors = page.locator(".toast.error")
    assert errors.count() == 0, errors.all_inner_texts()
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
        page.evaluate(
            "() => { const s = document.querySelector('.grid-scroll'); s.scrollTop = s.scrollHeight; }"
        )
        page.locator(".tile[data-index='639']").wait_for(timeout=15_000)
        assert page.locator(".tile").count() <= 150
        assert page.locator(".tile[data-index='0']").count() == 0
        # Keyboard: the last tile takes focus and Space selects it.
        page.locator(".tile[data-index='639']").focus()
        page.keyboard.press("Space")
        page.get_by_text("1 selected").wait_for()
    finally:
        sdk.delete_project(project.id)


def test_drop_files_with_progress_per_batch_then_untag_and_delete_selected(page, sdk, tmp_path):
    project = sdk.create_project(f"drop-{layout.new_id()[:8]}")
    try:
        tag = sdk.create_tag(project.id, "dropped")
        page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images")
        page.get_by_label("dropped", exact=True).check()
        files = [
            {"name": f"d{i}.jpg", "data": base64.b64encode(imgs.photo_jpeg(2_000 + i, (120, 90))).decode()}
            for i in range(70)
        ]
        # A real drop event carrying File objects, as the browser makes when files are dragged in.
        page.evaluate(
            """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            const target = document.querySelector(".images-main");
            target.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
            target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
            files,
        )
        page.locator(".upload-summary", has_text="70 uploaded").wait_for(timeout=60_000)
        assert page.locator(".upload .batch").count() == 2  # 64 + 6: one bar per batch
        assert page.locator(".upload .batch progress").evaluate_all("(bars) => bars.map((b) => b.value)") == [
            100,
            100,
        ]
        assert page.locator(".upload .batch .batch-state").all_inner_texts() == ["done", "done"]
        assert sdk.get_tagged_image_count(project.id, tag_ids=[tag.id]) == 70
        # Select three tiles, remove the tag from them, then delete them.
        page.locator(".images-toolbar", has_text="70 images").wait_for()
        tiles = page.locator(".tile")
        tiles.nth(0).locator(".pick").click()
        tiles.nth(2).locator(".pick").click(modifiers=["Shift"])
        page.get_by_text("3 selected").wait_for()
        page.get_by_label("Tag to remove").select_option(tag.id)
        page.get_by_role("button", name="Untag selected", exact=True).click()
        page.get_by_text("Removed the tag from 3 images.").wait_for()
        assert sdk.get_untagged_image_count(project.id) == 3
        page.get_by_role("button", name="Delete selected", exact=True).click()
        page.locator("dialog[open]").get_by_role("button", name="Delete images").click()
        page.get_by_text("Deleted 3 images.").wait_for()
        assert sdk.get_image_count(project.id) == 67 and sdk.get_untagged_image_count(project.id) == 0
    finally:
        sdk.delete_project(project.id)
