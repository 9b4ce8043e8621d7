"""`customvision`: upload a folder of photos, train, evaluate, publish, predict and export from a terminal.

Every call goes through the official SDK (azure-cognitiveservices-vision-customvision), the way a Custom
Vision user calls Azure, so the tool works against this service and against Azure Custom Vision alike.
Errors a user can act on (a wrong key, an unreachable endpoint, a name that matches nothing) are one line
on stderr with a non-zero exit code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from functools import wraps
from importlib import metadata
from pathlib import Path

import click
import requests
from azure.cognitiveservices.vision.customvision.training.models import PredictionQueryToken
from msrest.exceptions import ClientRequestError, HttpOperationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES

from . import render
from . import upload as uploading
from .service import DEFAULT_ENDPOINT, CliError, Service, is_guid, is_local

KEY_REJECTED = 2  # exit code of a refused key or an unreachable endpoint: the command never ran
LOCAL_PREDICTION_RESOURCE = "/subscriptions/local/prediction"  # any id: the local service has one resource
TERMINAL = ("Completed", "Failed")
IN_PROGRESS = "BadRequestTrainingAlreadyInProgress"


@dataclass
class State:
    service: Service
    json: bool
    debug: bool
    out: Console
    err: Console

    def emit(self, data) -> None:
        """JSON on stdout (nothing else goes there in --json mode, so it pipes into jq)."""
        click.echo(json.dumps(data, indent=2, default=str))


# ---- errors ----------------------------------------------------------------------------------------------
def explain(exc: BaseException, endpoint: str) -> tuple[str, int] | None:
    """(one line, exit code) for an error a user can act on; None for a bug (shown with its traceback)."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, HttpOperationError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:  # Custom Vision's answer to a wrong key (403 is quota or permissions: said as is)
            kind = "prediction" if "/prediction/" in exc.response.url.lower() else "training"
            return f"{kind} key rejected by {endpoint}", KEY_REJECTED
        code, message = _error_body(exc)
        return f"{code}: {message} (HTTP {status})", 1
    if isinstance(exc, ClientRequestError) and isinstance(exc.inner_exception, requests.RequestException):
        exc = exc.inner_exception
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach {endpoint}: {_reason(exc)}", KEY_REJECTED
    if isinstance(exc, requests.Timeout):
        return f"no answer from {endpoint} in time: {_reason(exc)}", KEY_REJECTED
    if isinstance(exc, requests.HTTPError) and exc.response is not None:  # a download from a storage URL
        url = exc.response.url.split("?")[0]  # not the SAS
        return f"download failed: HTTP {exc.response.status_code} from {url}", 1
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}", 1
    return None


def _error_body(exc: HttpOperationError) -> tuple[str, str]:
    error = getattr(exc, "error", None)  # CustomVisionErrorException: the CustomVisionError model
    inner = getattr(error, "error", None) or error
    code = getattr(inner, "code", None)
    if code:
        return code, getattr(inner, "message", None) or ""
    try:
        body = exc.response.json()
        return body.get("code", "Error"), body.get("message", "")
    except ValueError:
        return "Error", exc.response.text[:300]


def _reason(exc: Exception) -> str:
    """The socket's own words ("Connection refused") rather than urllib3's whole retry story."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found[-1].strip()
    for words in ("Connection refused", "timed out", "Name or service not known"):
        if words in text:
            return words
    return text[:200]


class Cli(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            state = ctx.obj
            said = explain(exc, state.service.endpoint) if isinstance(state, State) else None
            if said is None or state.debug:
                raise
            message, code = said
            state.err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
            ctx.exit(code)


# ---- the group -------------------------------------------------------------------------------------------
def _version() -> str:
    """The installed package's version; `python -m cvcli` from a checkout that was never installed has none."""
    try:
        return metadata.version("selfhosted-customvision")
    except metadata.PackageNotFoundError:
        return "(a source checkout, not installed)"


@click.group(
    "customvision",
    cls=Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option(
    "--endpoint",
    envvar="CUSTOMVISION_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="Custom Vision endpoint (env CUSTOMVISION_ENDPOINT), e.g. https://NAME.cognitiveservices.azure.com.",
)
@click.option(
    "--training-key",
    envvar="CUSTOMVISION_TRAINING_KEY",
    help="Training key (env CUSTOMVISION_TRAINING_KEY); a loopback endpoint defaults to the local key.",
)
@click.option(
    "--prediction-key",
    envvar="CUSTOMVISION_PREDICTION_KEY",
    help="Prediction key (env CUSTOMVISION_PREDICTION_KEY); a loopback endpoint defaults to the local key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of tables.")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
@click.version_option(version=_version(), prog_name="customvision")
@click.pass_context
def cli(ctx, endpoint, training_key, prediction_key, as_json, debug):
    """Custom Vision from the command line: upload, train, evaluate, publish, predict, export.

    Works against this project's service (`make run`: http://127.0.0.1:7071) and Azure Custom Vision.
    """
    ctx.obj = State(
        Service(endpoint, training_key, prediction_key),
        as_json,
        debug,
        # markup off: names, paths and COCO problems ("images[3].width") are printed as they are
        Console(highlight=False, markup=False),
        Console(stderr=True, highlight=False, markup=False),
    )


def json_option(fn):
    """`--json` after the command too (`customvision predict x.jpg --json`), the same as before it."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of tables.")
    @wraps(fn)
    def wrapper(*args, as_json: bool, **kwargs):
        state = click.get_current_context().obj
        state.json = state.json or as_json
        return fn(*args, **kwargs)

    return wrapper


def project_option(fn):
    return click.option("--project", "-p", required=True, help="Project name or id.")(fn)


pass_state = click.make_pass_decorator(State)


# ---- listings --------------------------------------------------------------------------------------------
@cli.command()
@json_option
@pass_state
def projects(state: State):
    """List the projects."""
    found = state.service.trainer.get_projects()
    if state.json:
        return state.emit([{"id": p.id, "name": p.name, "description": p.description} for p in found])
    rows = [(p.name, p.id, p.settings.classification_type or "", render.when(p.created)) for p in found]
    state.out.print(render.listing("Projects", ("Name", "Id", "Classification", "Created"), rows))


@cli.command()
@project_option
@json_option
@pass_state
def tags(state: State, project: str):
    """List a project's tags with their image counts."""
    p = state.service.project(project)
    found = state.service.trainer.get_tags(p.id)
    if state.json:
        return state.emit(
            [{"id": t.id, "name": t.name, "type": t.type, "imageCount": t.image_count} for t in found]
        )
    rows = [(t.name, t.type, t.image_count, t.id) for t in found]
    state.out.print(render.listing(f"Tags of {p.name}", ("Tag", "Type", "Images", "Id"), rows))


@cli.command()
@project_option
@json_option
@pass_state
def iterations(state: State, project: str):
    """List a project's iterations (status, publish name, exportable)."""
    p = state.service.project(project)
    found = state.service.trainer.get_iterations(p.id)
    if state.json:
        return state.emit([it.as_dict() for it in found])
    rows = [
        (it.name, it.status, it.publish_name, it.exportable, render.when(it.trained_at), it.id)
        for it in found
    ]
    cols = ("Name", "Status", "Published as", "Exportable", "Trained", "Id")
    state.out.print(render.listing(f"Iterations of {p.name}", cols, rows))


# ---- upload ----------------------------------------------------------------------------------------------
class RateColumn(ProgressColumn):
    """Images per second since the start (rich's TransferSpeedColumn speaks bytes, and its windowed speed
    needs two updates: a folder that fits one 64-image batch would never show a rate)."""

    def render(self, task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(f"{task.completed / elapsed:.1f} images/s" if elapsed and task.completed else "")


@cli.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@project_option
@click.option("--domain", default="General", show_default=True, help="Domain name or id, for a new project.")
@click.option(
    "--type",
    "project_type",
    type=click.Choice(["Classification", "ObjectDetection"], case_sensitive=False),
    default="Classification",
    show_default=True,
    help="Project type, for a new project.",
)
@click.option(
    "--classification-type",
    type=click.Choice(["Multiclass", "Multilabel"], case_sensitive=False),
    default="Multiclass",
    show_default=True,
    help="One tag per image or several, for a new classification project.",
)
@json_option
@pass_state
def upload(
    state: State, folder: Path, project: str, domain: str, project_type: str, classification_type: str
):
    """Upload a folder of images: each sub-folder is a tag, images at the top are untagged, *.json COCO files
    are imported (their images with their tags or boxes). Creates the project when there is none of that name.

    Exit code 1 when any file failed (the summary lists each with the service's status)."""
    svc = state.service
    p = svc.find_project(project)
    if p is None:
        if is_guid(project):
            raise CliError(f"no project with id {project} at {svc.endpoint}")
        kind = "ObjectDetection" if project_type.lower() == "objectdetection" else "Classification"
        d = svc.find_domain(domain, kind)
        p = svc.trainer.create_project(
            project,
            domain_id=d.id,
            classification_type=None if kind == "ObjectDetection" else classification_type.capitalize(),
        )
        state.err.print(f"created project {p.name} ({p.id}), domain {d.name} ({d.type})")
    detection = svc.is_detection(p)
    plan = uploading.plan_folder(
        folder,
        detection=detection,
        multiclass=(p.settings.classification_type or "Multiclass") == "Multiclass",
    )
    progress = Progress(
        TextColumn("uploading"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=state.err,
        transient=state.json,
    )
    with progress:
        task = progress.add_task("upload", total=len(plan.items))
        outcomes = uploading.send(svc.trainer, p.id, plan, lambda n: progress.advance(task, n))
    summary = uploading.summarise(plan, outcomes)
    if state.json:
        state.emit({"project": {"id": p.id, "name": p.name}, **summary.to_json(), "notes": plan.notes})
    else:
        _print_summary(state, folder, summary, plan.notes)
    if summary.failed:
        raise click.exceptions.Exit(1)


def _print_summary(state: State, folder: Path, summary: uploading.Summary, notes: list[str]) -> None:
    state.out.print(
        f"{summary.created} created, {summary.duplicates} duplicates, {len(summary.failed)} failed"
        + (f", {summary.skipped} skipped (not images)" if summary.skipped else "")
    )
    if summary.failed:
        rows = [(_relative(o.path, folder), o.status, o.message) for o in summary.failed]
        state.out.print(render.listing("Failed", ("File", "Status", "Why"), rows))
    for note in notes:
        state.out.print(f"note: {note}")


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


# ---- train and evaluate ----------------------------------------------------------------------------------
@cli.command()
@project_option
@click.option("--wait", is_flag=True, help="Follow the training until it ends, then print its performance.")
@click.option(
    "--budget",
    type=click.IntRange(0, 24 * 7),
    default=0,
    help="Hours of Advanced training (0: Quick training).",
)
@click.option("--force", is_flag=True, help="Train even when nothing changed since the last iteration.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds --wait waits at most.")
@click.option("--poll", type=float, default=1.0, hidden=True)
@json_option
@pass_state
def train(state: State, project: str, wait: bool, budget: int, force: bool, threshold: float, timeout, poll):
    """Start training a project; with --wait, follow it until Completed (or Failed, with the reason)."""
    svc = state.service
    p = svc.project(project)
    try:
        it = svc.trainer.train_project(
            p.id,
            training_type="Advanced" if budget else "Regular",
            reserved_budget_in_hours=budget,
            force_train=force,
        )
    except HttpOperationError as exc:
        running = _in_progress(svc, p) if wait and _error_body(exc)[0] == IN_PROGRESS else None
        if running is None:
            raise
        it = running  # `train --wait` again after an interrupted wait follows the same training
    state.err.print(f"training {p.name}: iteration {it.name} ({it.id}) {it.status}")
    if not wait:
        return state.emit(it.as_dict()) if state.json else None
    it = _follow(state, p, it, timeout, poll)
    if it.status == "Failed":
        raise CliError(f"training failed: {it.training_error_details or 'no reason given'}")
    _performance(state, p, it, threshold, None)


def _in_progress(svc: Service, project):
    return next((it for it in svc.trainer.get_iterations(project.id) if it.status not in TERMINAL), None)


def _follow(state: State, project, it, timeout: float, poll: float):
    """Poll until the iteration settles. Stopping the wait (timeout, Ctrl-C) leaves the training running,
    and `train --wait` again follows it (see `train`)."""
    start = time.monotonic()
    again = f"`customvision train -p {project.name} --wait` follows it again"
    with state.err.status(f"training {it.name}: {it.status}") as line:
        while it.status not in TERMINAL:
            if time.monotonic() - start > timeout:
                raise CliError(
                    f"iteration {it.name} still {it.status} after {timeout:.0f} s; it goes on: {again}"
                )
            try:
                time.sleep(poll)
            except KeyboardInterrupt:
                raise CliError(f"stopped waiting; iteration {it.name} goes on: {again}", code=130) from None
            it = state.service.trainer.get_iteration(project.id, it.id)
            line.update(f"training {it.name}: {it.status} ({time.monotonic() - start:.0f} s)")
    state.err.print(f"iteration {it.name}: {it.status} after {time.monotonic() - start:.0f} s")
    return it


@cli.command()
@project_option
@click.option("--iteration", help="Iteration id or name (default: the newest trained).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option(
    "--overlap", type=click.FloatRange(0, 1), default=0.3, show_default=True, help="Detectors' IoU."
)
@json_option
@pass_state
def performance(state: State, project: str, iteration: str | None, threshold: float, overlap: float):
    """Precision, recall and AP per tag of a trained iteration at a probability threshold."""
    p = state.service.project(project)
    _performance(state, p, state.service.iteration(p, iteration), threshold, overlap)


def _performance(state: State, project, it, threshold: float, overlap: float | None) -> None:
    perf = state.service.trainer.get_iteration_performance(
        project.id, it.id, threshold=threshold, overlap_threshold=overlap
    )
    if state.json:
        state.emit(render.performance_json(perf, it))
    else:
        state.out.print(render.performance_table(perf, it, threshold))


@cli.command()
@project_option
@click.option("--iteration", help="Iteration id or name (default: the newest trained).")
@click.option("--name", "publish_name", required=True, help="The name predictions will call it by.")
@click.option(
    "--prediction-resource",
    envvar="CUSTOMVISION_PREDICTION_RESOURCE_ID",
    help="Azure resource id of the prediction resource (env CUSTOMVISION_PREDICTION_RESOURCE_ID); "
    "not needed locally.",
)
@pass_state
def publish(state: State, project: str, iteration: str | None, publish_name: str, prediction_resource):
    """Publish an iteration for prediction under a name."""
    svc = state.service
    if not prediction_resource:
        if not is_local(svc.endpoint):
            raise CliError("publishing on Azure needs --prediction-resource (the prediction resource's id)")
        prediction_resource = LOCAL_PREDICTION_RESOURCE
    p = svc.project(project)
    it = svc.iteration(p, iteration)
    svc.trainer.publish_iteration(p.id, it.id, publish_name, prediction_resource)
    state.out.print(f"published {it.name} ({it.id}) of {p.name} as {publish_name!r}")


# ---- predict ---------------------------------------------------------------------------------------------
@cli.command()
@click.argument("images", nargs=-1, required=True)
@project_option
@click.option("--iteration-name", help="Published name (default: the newest published iteration).")
@click.option("--url", "by_url", is_flag=True, help="IMAGES are URLs, fetched by the service.")
@click.option(
    "--top", type=click.IntRange(1), default=3, show_default=True, help="Predictions shown per image."
)
@click.option("--store/--no-store", default=True, show_default=True, help="Keep the prediction for review.")
@json_option
@pass_state
def predict(state: State, images, project: str, iteration_name, by_url: bool, top: int, store: bool):
    """Classify (or detect, in a detection project) images with a published iteration."""
    svc = state.service
    p = svc.project(project)
    name = svc.published_name(p, iteration_name)
    detection = svc.is_detection(p)
    if not by_url:
        for image in images:
            size = Path(image).stat().st_size
            if size > MAX_PREDICTION_IMAGE_BYTES:
                raise CliError(f"{image}: {uploading.too_big(size, MAX_PREDICTION_IMAGE_BYTES)}")
    call = _prediction_call(svc.predictor, detection, by_url, store)
    rows = []
    for image in images:
        source = image if by_url else Path(image).read_bytes()
        rows += render.prediction_rows(image, call(p.id, name, source), top)
    if state.json:
        state.emit(rows)
    else:
        state.out.print(render.predictions_table(rows, detection))


def _prediction_call(predictor, detection: bool, by_url: bool, store: bool):
    """The one SDK method of the eight for this project type, source and storage choice."""
    kind = "detect" if detection else "classify"
    method = f"{kind}_image{'_url' if by_url else ''}{'' if store else '_with_no_store'}"
    fn = getattr(predictor, method)
    if by_url:
        return lambda project_id, name, url: fn(project_id, name, url=url)
    return fn


# ---- export ----------------------------------------------------------------------------------------------
@cli.command()
@project_option
@click.option("--iteration", help="Iteration id or name (default: the newest trained).")
@click.option(
    "--platform", default="ONNX", show_default=True, help="ONNX, DockerFile, TensorFlow, OpenVino, ..."
)
@click.option("--flavor", help="e.g. ONNXInt8 (ONNX), Linux or ARM (DockerFile), TensorFlowLite.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait for the export.")
@click.option("--poll", type=float, default=1.0, hidden=True)
@pass_state
def export(state: State, project, iteration, platform, flavor, output: Path, timeout: float, poll: float):
    """Export a trained iteration for a platform, wait until it is ready and download it."""
    svc = state.service
    p = svc.project(project)
    it = svc.iteration(p, iteration)
    asked = svc.trainer.export_iteration(p.id, it.id, platform, flavor=flavor)
    flavor = flavor or asked.flavor  # the service's default flavour: wait for that one, not another
    start = time.monotonic()
    with state.err.status(f"exporting {it.name} to {platform} {flavor or ''}".strip()):
        while (found := _export_of(svc.trainer.get_exports(p.id, it.id), platform, flavor)) is None or (
            found.status == "Exporting"
        ):
            if time.monotonic() - start > timeout:
                raise CliError(f"the {platform} export is still running after {timeout:.0f} s")
            time.sleep(poll)
    kind = " ".join(x for x in (found.platform, found.flavor) if x)
    if found.status != "Done":
        raise CliError(f"the {kind} export ended {found.status}")
    size = _download(svc, p.id, found.download_uri, output)
    state.out.print(f"{output}: {size / 2**20:.1f} MB ({kind})")


def _export_of(exports, platform: str, flavor: str | None):
    for e in exports:
        if e.platform.lower() == platform.lower() and (
            flavor is None or (e.flavor or "").lower() == flavor.lower()
        ):
            return e
    return None


def _download(svc: Service, project_id: str, uri: str, output: Path) -> int:
    """Absolute URIs are storage URLs (a SAS); a relative one (Azure with VNET) is read with get_artifact."""
    output.parent.mkdir(parents=True, exist_ok=True)
    part = output.with_name(output.name + ".part")
    with open(part, "wb") as f:
        if uri.startswith(("http://", "https://")):
            with requests.get(uri, stream=True, timeout=60) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
        else:
            for chunk in svc.trainer.get_artifact(project_id, uri):
                f.write(chunk)
    part.replace(output)
    return output.stat().st_size


# ---- stored predictions ----------------------------------------------------------------------------------
@cli.command()
@project_option
@click.option(
    "--suggested", is_flag=True, help="Most useful to label first (Custom Vision's Suggested order)."
)
@click.option("--take", type=click.IntRange(1, 256), default=20, show_default=True)
@json_option
@pass_state
def predictions(state: State, project: str, suggested: bool, take: int):
    """Stored predictions (the images sent to the prediction endpoint), newest first or --suggested."""
    svc = state.service
    p = svc.project(project)
    token = PredictionQueryToken(order_by="Suggested" if suggested else "Newest", max_count=take)
    found = svc.trainer.query_predictions(p.id, token).results or []
    if state.json:
        return state.emit([r.as_dict() for r in found])
    rows = []
    for r in found:
        best = max(r.predictions or [], key=lambda x: x.probability, default=None)
        rows.append(
            (
                render.when(r.created),
                best.tag_name if best else "",
                render.percent(best.probability) if best else "",
                r.id,
            )
        )
    if not rows:
        return state.out.print(f"no stored predictions in {p.name}")
    title = f"Stored predictions of {p.name}" + (" (suggested first)" if suggested else "")
    state.out.print(render.listing(title, ("Created", "Top tag", "Probability", "Id"), rows))


@cli.command()
@project_option
@click.option("--iteration", help="Trained iteration id or name (default: the newest trained).")
@click.option(
    "--take", type=click.IntRange(1, 64), default=20, show_default=True, help="Untagged images asked about."
)
@click.option(
    "--top", type=click.IntRange(1), default=1, show_default=True, help="Suggestions shown per image."
)
@json_option
@pass_state
def suggest(state: State, project: str, iteration: str | None, take: int, top: int):
    """Suggested tags (boxes in a detector) for the untagged images, by a trained iteration (Smart Labeler)."""
    svc = state.service
    p = svc.project(project)
    it = svc.iteration(p, iteration)
    untagged = svc.trainer.get_untagged_images(p.id, take=take)
    if not untagged:
        return state.emit([]) if state.json else state.out.print(f"no untagged images in {p.name}")
    found = svc.trainer.suggest_tags_and_regions(p.id, it.id, [im.id for im in untagged])
    rows = [row for s in found for row in render.prediction_rows(s.id, s, top)]
    if state.json:
        return state.emit(rows)
    state.out.print(render.predictions_table(rows, svc.is_detection(p), source="Image id"))


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="customvision")


if __name__ == "__main__":
    main(sys.argv[1:])
