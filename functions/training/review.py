"""The review loop over stored predictions (Training API): list them newest, oldest or suggested first,
delete them, and move them into the training set. (Quick tests, which also store predictions: quicktest.py.)

- `query_predictions`: a prediction matches when, for each tag named (at most MAX_QUERY_TAGS, all must
  hold), its highest probability for that tag lies within [minThreshold, maxThreshold] (default 0..1),
  and it is in the time window, iteration and application asked for; pages hold maxCount (default
  DEFAULT_COUNT, at most MAX_COUNT) results. Newest and Oldest are range scans of the prediction store
  from a cursor (the last id served); prediction_query.py parses the token. Suggested ranks the window once per query session (ranking.py:
  most uncertain first, near duplicates spread out) and keeps the ranked ids in a session blob for
  SESSION_TTL, so later pages follow the same order while predictions are deleted, promoted or added
  meanwhile; what lies past the ranked pool follows by uncertainty with a stateless cursor. Tokens are
  continuation.py's; an iteration's predictions stay listed after the iteration is deleted.
- `create_images_from_predictions`: the stored image goes through the upload pipeline (ingest.py), so it
  gets the content-addressed id, thumbnail and status an upload of those bytes would (sourceUrl: the
  prediction id); its prediction is deleted only once the image is in the training set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice

from azure.core.exceptions import ResourceNotFoundError

from cvcore import layout
from cvcore.errors import BadRequest

from ..domain.ports import BlobStore, MetadataRepository
from ..domain.records import Project, iso, utcnow
from ..prediction.ports import PredictionStore, StoredPrediction
from ..web.params import guid
from . import continuation, ingest, ranking, uploads
from .prediction_query import INVALID, PredictionQuery, parse_query
from .projects import require_project

MAX_IDS = 64
SESSION_TTL = timedelta(days=1)
MISSING = (KeyError, FileNotFoundError, ResourceNotFoundError)  # a blob that is not there (fake, file, Azure)


# ---- query_predictions --------------------------------------------------------------------------------------
def query_predictions(
    repo: MetadataRepository,
    blobs: BlobStore,
    store: PredictionStore,
    project_id: str,
    body,
    now: datetime | None = None,
) -> dict:
    """PredictionQueryResult: a page of the project's stored predictions and the token of the next one."""
    project = require_project(repo, project_id)
    q = parse_query(body, {t.id: t for t in repo.list_tags(project.id)})
    session = None
    if q.order == "Suggested":
        records, session, cont = _suggested(blobs, store, project, q, now or utcnow())
    else:
        records, cont = _chronological(store, project, q)
    domains = {it.id: it.domain_id for it in repo.list_iterations(project.id)}
    return {
        "token": q.token(session, cont),
        "results": [stored_json(store, r, domains.get(r.iteration_id, project.domain_id)) for r in records],
    }


def stored_json(store: PredictionStore, r: StoredPrediction, domain_id: str | None) -> dict:
    image = store.image_url(r.project_id, r.id)
    return {
        "resizedImageUri": image,
        "thumbnailUri": store.thumbnail_url(r.project_id, r.id),
        "originalImageUri": image,
        "domain": domain_id,
        "id": r.id,
        "project": r.project_id,
        "iteration": r.iteration_id,
        "created": iso(r.created),
        "predictions": r.predictions,
    }


def _scan(store: PredictionStore, project: Project, q: PredictionQuery, **kw):
    rows = store.scan(project.id, start=q.start, iteration_id=q.iteration_id, application=q.application, **kw)
    return (r for r in rows if q.matches(r))


def _chronological(store: PredictionStore, project: Project, q: PredictionQuery):
    after = None
    if q.continuation:
        state = continuation.decode(q.continuation, project.id, q.fingerprint(), INVALID)
        after = guid(state.get("after"), "continuation")
    rows = _scan(
        store,
        project,
        q,
        end=q.end,
        after=after,
        oldest_first=q.order == "Oldest",
        page=None if q.tags else q.max_count + 1,
    )  # tag filters drop rows: read the default pages
    page = list(islice(rows, q.max_count + 1))  # one more than asked: is there a next page?
    if len(page) <= q.max_count:
        return page, None
    page = page[: q.max_count]
    return page, continuation.encode(project.id, q.fingerprint(), {"after": page[-1].id})


def _key(r: StoredPrediction) -> tuple[float, str]:
    """The plain Suggested order: most uncertain first, then by id."""
    return -float(r.uncertainty), r.id


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _suggested(blobs: BlobStore, store: PredictionStore, project: Project, q: PredictionQuery, now: datetime):
    """A page of the Suggested order: the ranked pool (ranked now, or read from the session), then the tail."""
    if q.continuation:
        state = continuation.decode(q.continuation, project.id, q.fingerprint(), INVALID)
        session = guid(state.get("session"), "continuation")
        ranked = _read_session(blobs, project.id, session, now) if "offset" in state else []
        read = partial(store.get, project.id)  # ids of an earlier snapshot: which still exist?
    else:
        session, ranked, read, state = _rank(store, project, q, now)
    records, position = _from_pool(read, ranked, state.get("offset"), q.max_count + 1)
    if position is None:
        return _with_tail(store, project, q, session, state, records)
    if not q.continuation:
        _write_session(blobs, project.id, session, ranked, now)
    return records[: q.max_count], session, _next(project, q, {**state, "offset": position})


def _by_uncertainty(
    store: PredictionStore,
    project: Project,
    q: PredictionQuery,
    end: datetime,
    page: int,
    after=None,
    brief: bool = False,
):
    """The window's matching records most uncertain first (the store's uncertainty index: a range scan).
    `brief` (only without tag filters, which need the predictions): records enough to rank."""
    rows = store.scan_uncertain(
        project.id,
        start=q.start,
        end=end,
        after=after,
        iteration_id=q.iteration_id,
        application=q.application,
        page=None if q.tags else page,
        brief=brief and not q.tags,
    )
    return (r for r in rows if q.matches(r))


def _rank(store: PredictionStore, project: Project, q: PredictionQuery, now: datetime):
    """A new session: the POOL most uncertain predictions of the window, in review order (ranking.py)."""
    session = layout.new_prediction_id(_ms(now))
    end = min(q.end, now) if q.end else now  # a snapshot: what arrives later waits for the next query
    end = datetime.fromtimestamp(_ms(end) / 1000, UTC)  # whole milliseconds, as the token keeps it
    pool = list(islice(_by_uncertainty(store, project, q, end, ranking.POOL, brief=True), ranking.POOL))
    # where the tail starts: after a full pool there may be more (one storage page, not two, to find out later)
    boundary = list(_key(pool[-1])) if len(pool) == ranking.POOL else None
    order = ranking.diverse_order([r.uncertainty for r in pool], [r.signature for r in pool])
    state = {"session": session, "end": _ms(end), "offset": 0, "boundary": boundary}
    if q.tags:  # the pool's records are full already (tag filters need the predictions)
        known = {r.id: r for r in pool}

        def read(ids: list[str]) -> dict[str, StoredPrediction]:
            return {i: known[i] for i in ids}
    else:  # brief records, listed by the scan just now: the store completes them
        read = partial(store.complete, project.id)
    return session, [pool[i].id for i in order], read, state


def _from_pool(
    read: Callable[[list[str]], dict[str, StoredPrediction]], ranked: list[str], offset: int | None, n: int
) -> tuple[list[StoredPrediction], int | None]:
    """Up to n records of `ranked` from `offset` (those `read` does not find, deleted since, are skipped), and
    the position of the n-th when there is one (where the next page starts)."""
    page: list[tuple[int, StoredPrediction]] = []
    i = len(ranked) if offset is None else offset
    while len(page) < n and i < len(ranked):
        chunk = ranked[i : i + n - len(page)]
        found = read(chunk)
        page += [(i + j, found[x]) for j, x in enumerate(chunk) if x in found]
        i += len(chunk)
    return [r for _, r in page], (page[n - 1][0] if len(page) == n else None)


def _with_tail(
    store: PredictionStore,
    project: Project,
    q: PredictionQuery,
    session: str,
    state: dict,
    records: list[StoredPrediction],
):
    """Past the ranked pool, the rest by plain uncertainty: after the pool's boundary, or the tail cursor."""
    after = state.get("boundary") if "offset" in state else state.get("after")
    pooled = len(records)
    if after is not None:
        end = datetime.fromtimestamp(state["end"] / 1000, UTC)
        cursor = (-float(after[0]), str(after[1]))  # _key: (-uncertainty, id)
        records = records + list(
            islice(
                _by_uncertainty(store, project, q, end, q.max_count + 1 - pooled, after=cursor),
                q.max_count + 1 - pooled,
            )
        )
    if len(records) <= q.max_count:
        return records, session, None
    last = list(_key(records[q.max_count - 1])) if q.max_count > pooled else after
    return (
        records[: q.max_count],
        session,
        _next(project, q, {"session": session, "end": state["end"], "after": last}),
    )


def _next(project: Project, q: PredictionQuery, state: dict) -> str:
    return continuation.encode(project.id, q.fingerprint(), state)


def _session_blob(project_id: str, session: str) -> str:
    day = datetime.fromtimestamp(layout.prediction_time_ms(session) / 1000, UTC).strftime("%Y%m%d")
    return f"{layout.project_prefix(project_id)}query-sessions/{day}/{session}.json"


def _write_session(blobs: BlobStore, project_id: str, session: str, ranked: list[str], now: datetime) -> None:
    body = json.dumps({"created": iso(now), "ids": ranked}, separators=(",", ":")).encode()
    blobs.put(layout.PREDICTIONS, _session_blob(project_id, session), body, "application/json")


def _read_session(blobs: BlobStore, project_id: str, session: str, now: datetime) -> list[str]:
    age = _ms(now) - layout.prediction_time_ms(session)
    try:
        if age > SESSION_TTL.total_seconds() * 1000:
            raise KeyError(session)
        return json.loads(blobs.get(layout.PREDICTIONS, _session_blob(project_id, session)))["ids"]
    except MISSING:
        hours = int(SESSION_TTL.total_seconds() // 3600)
        raise BadRequest(
            INVALID,
            f"continuation: this Suggested query session has expired (sessions last {hours} "
            "hours); query again without a continuation",
        ) from None


def purge_query_sessions(repo: MetadataRepository, blobs: BlobStore, now: datetime, days: int = 3) -> int:
    """The daily purge: delete the Suggested session blobs of the `days` days before yesterday."""
    removed = 0
    for project in repo.list_projects():
        for back in range(2, 2 + days):
            day = (now - timedelta(days=back)).strftime("%Y%m%d")
            removed += blobs.delete_prefix(
                layout.PREDICTIONS, f"{layout.project_prefix(project.id)}query-sessions/{day}/"
            )
    return removed


# ---- delete and promote -------------------------------------------------------------------------------------
def delete_predictions(
    repo: MetadataRepository, store: PredictionStore, project_id: str, ids: list[str]
) -> None:
    project = require_project(repo, project_id)
    if not ids:
        raise BadRequest("BadRequestPredictionIdsMissing", "ids: name the predictions to delete")
    if len(ids) > MAX_IDS:
        raise BadRequest(
            "BadRequestPredictionIdsExceededCount",
            f"ids: at most {MAX_IDS} predictions at a time, got {len(ids)}",
        )
    store.delete(project.id, [guid(x, f"ids[{i}]") for i, x in enumerate(ids)])


def create_images_from_predictions(
    repo: MetadataRepository, blobs: BlobStore, store: PredictionStore, pool, project_id: str, body
) -> dict:
    """ImageCreateSummary: each stored prediction's image joins the training set (sourceUrl = its
    prediction id) with the batch's and its own tags (and regions, in a detection project)."""
    project = require_project(repo, project_id)
    entries, batch_tags, metadata = uploads._batch(body, project)
    wanted = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest(
                "BadRequestImageBatch", f"images[{i}]: an object with the prediction's id is required"
            )
        wanted.append(
            (
                guid(entry.get("id"), f"images[{i}].id"),
                batch_tags + uploads.tag_ids(entry.get("tagIds"), f"images[{i}].tagIds"),
                uploads._regions(entry, f"images[{i}].regions", project),
            )
        )
    stored = store.get(project.id, [w[0] for w in wanted])

    def candidate(item) -> ingest.Candidate:
        prediction_id, tag_ids, regions = item
        data, error = None, None
        try:
            if prediction_id not in stored:
                raise KeyError(prediction_id)
            data = blobs.get(layout.PREDICTIONS, layout.prediction_image(project.id, prediction_id))
        except MISSING:
            error = (
                "ErrorSource",
                (
                    f"prediction {prediction_id} is not stored in this project (deleted, "
                    "already added, or older than 30 days)"
                ),
            )
        return ingest.Candidate(prediction_id, data, tag_ids, regions, error, origin="prediction")

    candidates = list(pool.map(candidate, wanted))
    tags = {t.id: t for t in repo.list_tags(project.id)}
    outcomes = ingest.ingest(repo, blobs, pool, project, candidates, metadata, tags)
    moved = [
        c.source
        for c, o in zip(candidates, outcomes, strict=True)
        if o.status in (ingest.OK, ingest.DUPLICATE)
    ]
    if moved:  # only now: the image is in the training set, so nothing is lost if this fails
        store.delete(project.id, moved)
    return ingest.summary(project, outcomes, tags, blobs.url)
