"""The portal in headless Chromium against the local host on Azurite.

first paint: time from navigation to the project list drawn (the `cv:projects-listed` mark, 40 projects), and
    the browser's first contentful paint; baseline in the same run: the same tab fetching GET /projects (the one
    call the list needs) from an already loaded page. Ratio = list drawn / bare API call.
grid scroll: a project of PORTAL_GRID_IMAGES (default 2,000) images; the Training Images grid is scrolled from
    top to bottom in steps, one per animation frame, and every frame's duration recorded; baseline in the
    same run: the same number of frames with no scrolling (the idle frame). Also the tiles in the DOM at the
    end (virtualised: a few rows, not 2,000) and whether the last image's tile was reached.
Environment: PORTAL_GRID_IMAGES, PORTAL_PROJECTS (default 40)."""

from __future__ import annotations

import os
import statistics
import time

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.portal.conftest import CHROMIUM, FLAGS
from tests.support import images as imgs
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host

BATCH = 64
TRAINING = "/customvision/v3.4-preview/training"

FRAMES_JS = """async ([steps, scroll]) => {
  const tile = document.querySelector('main img');
  let el = tile;
  while (el && el !== document.body) {
    const s = getComputedStyle(el);
    if (/(auto|scroll)/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 50) break;
    el = el.parentElement;
  }
  const box = (el && el !== document.body) ? el : document.scrollingElement;
  const total = box.scrollHeight - box.clientHeight;
  const times = [];
  let last = performance.now();
  for (let i = 1; i <= steps; i++) {
    if (scroll) box.scrollTop = Math.round(total * i / steps);
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  await new Promise((r) => setTimeout(r, 800));
  return {times, scrollable: total, tiles: document.querySelectorAll('main img').length};
}"""


def _stats(times: list[float]) -> dict:
    s = sorted(times)
    return {
        "median_ms": round(statistics.median(s), 2),
        "p95_ms": round(s[int(0.95 * (len(s) - 1))], 2),
        "max_ms": round(s[-1], 2),
        "over_33ms": sum(t > 33.4 for t in s),
    }


def _signed_in(browser, url):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('cv.trainingKey', {LOCAL_TRAINING_KEY!r});")
    return context.new_page()


def _first_paint(browser, url, runs: int = 7) -> dict:
    listed, fcp, api = [], [], []
    for _ in range(runs):
        page = _signed_in(browser, url)
        page.goto(f"{url}/portal/")
        page.wait_for_function(
            "() => performance.getEntriesByName('cv:projects-listed').length > 0", timeout=30_000
        )
        listed.append(page.evaluate("performance.getEntriesByName('cv:projects-listed')[0].startTime"))
        fcp.append(
            page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0")
        )
        api.append(
            page.evaluate(
                """async (base) => { const t = performance.now();
            const r = await fetch(base + '/projects', {headers: {'Training-Key': sessionStorage.getItem('cv.trainingKey')}});
            await r.json(); return performance.now() - t; }""",
                TRAINING,
            )
        )
        page.context.close()
    med = statistics.median
    return {
        "runs": runs,
        "listed_ms": round(med(listed), 1),
        "listed_max_ms": round(max(listed), 1),
        "fcp_ms": round(med(fcp), 1),
        "api_ms": round(med(api), 1),
        "ratio_vs_api": round(med(listed) / max(med(api), 0.1), 1),
    }


def _grid(browser, url, trainer, n: int) -> dict:
    project = trainer.create_project(f"grid-{layout.new_id()[:8]}")
    tags = [trainer.create_tag(project.id, name).id for name in ("left", "right")]
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(
                    name=f"{k}.jpg",
                    contents=imgs.photo_jpeg(7000 + k, (320, 240), quality=70),
                    tag_ids=[tags[k % 2]],
                )
                for k in range(i, min(i + BATCH, n))
            ]
        )
        assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    upload_s = time.perf_counter() - start
    page = _signed_in(browser, url)
    t = time.perf_counter()
    page.goto(f"{url}/portal/#/p/{project.id}/images")
    page.wait_for_selector("main img", timeout=30_000)
    opened = time.perf_counter() - t
    page.wait_for_timeout(1000)
    idle = page.evaluate(FRAMES_JS, [240, False])
    scrolled = page.evaluate(FRAMES_JS, [240, True])
    text = page.inner_text("main")
    page.context.close()
    trainer.delete_project(project.id)
    idle_s, scroll_s = _stats(idle["times"]), _stats(scrolled["times"])
    return {
        "images": n,
        "upload_s": round(upload_s, 1),
        "open_to_first_tile_s": round(opened, 2),
        "frames": len(scrolled["times"]),
        "scrollable_px": scrolled["scrollable"],
        "idle": idle_s,
        "scroll": scroll_s,
        "tiles_in_dom": scrolled["tiles"],
        "count_shown": str(n) in text.replace(",", ""),
        "ratio_median_vs_idle": round(scroll_s["median_ms"] / max(idle_s["median_ms"], 0.01), 2),
        "ratio_p95_vs_idle": round(scroll_s["p95_ms"] / max(idle_s["p95_ms"], 0.01), 2),
    }


def run() -> dict:
    from playwright.sync_api import sync_playwright

    n_images = int(os.environ.get("PORTAL_GRID_IMAGES", "2000"))
    n_projects = int(os.environ.get("PORTAL_PROJECTS", "40"))
    with running_azurite() as conn, running_host(conn, poll_interval=0.5) as url, sync_playwright() as pw:
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        made = [trainer.create_project(f"bench-{i:03d}-{layout.new_id()[:6]}").id for i in range(n_projects)]
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            first = _first_paint(browser, url)
            first["projects"] = n_projects
            grid = _grid(browser, url, trainer, n_images)
        finally:
            browser.close()
            for pid in made:
                trainer.delete_project(pid)
    return {"first_paint": first, "grid": grid}


def report(r: dict) -> str:
    f, g = r["first_paint"], r["grid"]
    return "\n".join(
        [
            "portal: headless Chromium against the local host on Azurite",
            f"  first paint of the project list ({f['projects']} projects, median of {f['runs']}): list drawn "
            f"{f['listed_ms']:.0f} ms (max {f['listed_max_ms']:.0f}), first contentful paint {f['fcp_ms']:.0f} ms; "
            f"baseline GET /projects from a loaded tab {f['api_ms']:.0f} ms; ratio {f['ratio_vs_api']}",
            f"  grid of {g['images']} images (uploaded in {g['upload_s']} s): first tile {g['open_to_first_tile_s']} s "
            f"after opening; scrolled {g['scrollable_px']} px over {g['frames']} frames: median "
            f"{g['scroll']['median_ms']} ms, p95 {g['scroll']['p95_ms']} ms, max {g['scroll']['max_ms']} ms, "
            f"{g['scroll']['over_33ms']} frames over 33 ms; idle baseline median {g['idle']['median_ms']} ms, "
            f"p95 {g['idle']['p95_ms']} ms; ratio median {g['ratio_median_vs_idle']}, p95 {g['ratio_p95_vs_idle']}; "
            f"{g['tiles_in_dom']} tiles in the DOM at the end; total shown: {g['count_shown']}",
        ]
    )
