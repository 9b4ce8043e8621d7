"""The PredictionQueryToken of QueryPredictions, parsed and checked (review.py runs it): order, up to
MAX_QUERY_TAGS tag thresholds, time window, iteration, application, page size and continuation. Its
fingerprint binds a continuation token to the query that made it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cvcore.errors import BadRequest, NotFound

from ..domain.records import Tag, iso
from ..prediction import service
from ..prediction.ports import StoredPrediction
from ..web.params import guid, lower_keys, page_size, unit
from . import continuation

MAX_QUERY_TAGS = 2
ORDERS = ("Newest", "Oldest", "Suggested")
INVALID = "BadRequestPredictionInvalidQueryParameters"


def _time(value, path: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise BadRequest(INVALID, f"{path}: an ISO 8601 date and time is required, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class PredictionQuery:
    order: str
    tags: list[tuple[str, float, float]]  # (tag id, min, max): the prediction's probability for it within
    iteration_id: str | None
    start: datetime | None
    end: datetime | None
    application: str | None
    max_count: int
    continuation: str | None

    def matches(self, r: StoredPrediction) -> bool:
        got = r.tag_max() if self.tags else {}
        return all(lo <= got.get(tag, 0.0) <= hi for tag, lo, hi in self.tags)

    def fingerprint(self) -> str:
        return continuation.fingerprint(
            {
                "o": self.order,
                "t": self.tags,
                "i": self.iteration_id,
                "s": self.start and iso(self.start),
                "e": self.end and iso(self.end),
                "a": self.application,
            }
        )

    def token(self, session: str | None, cont: str | None) -> dict:
        """The PredictionQueryToken of the reply: this query, with what continues it."""
        return {
            "session": session,
            "continuation": cont,
            "maxCount": self.max_count,
            "orderBy": self.order,
            "tags": [{"id": t, "minThreshold": lo, "maxThreshold": hi} for t, lo, hi in self.tags],
            "iterationId": self.iteration_id,
            "startTime": self.start and iso(self.start),
            "endTime": self.end and iso(self.end),
            "application": self.application,
        }


def parse_query(body, tags: dict[str, Tag]) -> PredictionQuery:
    b = lower_keys(body, "PredictionQueryToken", INVALID)
    order = {o.lower(): o for o in ORDERS}.get(str(b.get("orderby") or "Newest").lower())
    if order is None:
        raise BadRequest(
            INVALID, f"orderBy: one of {', '.join(ORDERS)} is required, got {b.get('orderby')!r}"
        )
    raw_tags = b.get("tags") or []
    if not isinstance(raw_tags, list):
        raise BadRequest(INVALID, "tags: a list of {id, minThreshold, maxThreshold} is required")
    if len(raw_tags) > MAX_QUERY_TAGS:
        raise BadRequest(
            "BadRequestPredictionTagsExceededCount",
            f"tags: a query combines at most {MAX_QUERY_TAGS} tags, got {len(raw_tags)}",
        )
    parsed = []
    for i, raw in enumerate(raw_tags):
        t = lower_keys(raw, "PredictionQueryTag", INVALID)
        tag_id = guid(t.get("id"), f"tags[{i}].id")
        if tag_id not in tags:
            raise NotFound("NotFoundTag", f"tags[{i}].id: tag {tag_id} does not exist in this project")
        lo = unit(t.get("minthreshold"), 0.0, f"tags[{i}].minThreshold", INVALID)
        hi = unit(t.get("maxthreshold"), 1.0, f"tags[{i}].maxThreshold", INVALID)
        if lo > hi:
            raise BadRequest(INVALID, f"tags[{i}]: minThreshold {lo} is above maxThreshold {hi}")
        parsed.append((tag_id, lo, hi))
    start, end = _time(b.get("starttime"), "startTime"), _time(b.get("endtime"), "endTime")
    if start and end and start >= end:
        raise BadRequest(INVALID, "startTime must be before endTime")
    iteration_id = guid(b["iterationid"], "iterationId") if b.get("iterationid") else None
    application = service.check_application(b.get("application")) or None
    cont = b.get("continuation") or None
    return PredictionQuery(
        order,
        parsed,
        iteration_id,
        start,
        end,
        application,
        page_size(b.get("maxcount"), INVALID, "BadRequestPredictionResultsExceededCount"),
        cont,
    )
