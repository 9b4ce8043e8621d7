"""Turning SDK models into rich tables and plain JSON: kept apart from the commands so both outputs say the
same thing and tests can check them without a service."""

from __future__ import annotations

from rich.table import Table


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def when(moment) -> str:
    """Minutes are enough in a listing (the JSON keeps the full timestamp)."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def performance_json(perf, iteration) -> dict:
    return {
        "iteration": {"id": iteration.id, "name": iteration.name},
        "precision": perf.precision,
        "recall": perf.recall,
        "averagePrecision": perf.average_precision,
        "perTag": [
            {
                "id": t.id,
                "name": t.name,
                "precision": t.precision,
                "recall": t.recall,
                "averagePrecision": t.average_precision,
            }
            for t in perf.per_tag_performance or []
        ],
    }


def performance_table(perf, iteration, threshold: float) -> Table:
    table = Table(title=f"{iteration.name}, probability threshold {threshold:g}")
    for name in ("Tag", "Precision", "Recall", "AP"):
        table.add_column(name, justify="left" if name == "Tag" else "right")
    for t in sorted(perf.per_tag_performance or [], key=lambda t: t.name.casefold()):
        table.add_row(t.name, percent(t.precision), percent(t.recall), percent(t.average_precision))
    table.add_section()
    table.add_row("all tags", percent(perf.precision), percent(perf.recall), percent(perf.average_precision))
    return table


def prediction_rows(source: str, result, top: int) -> list[dict]:
    """The `top` most probable predictions of one image (the service sorts them, this does not rely on it)."""
    best = sorted(result.predictions or [], key=lambda p: p.probability, reverse=True)[:top]
    return [
        {
            "file": source,
            "tag": p.tag_name,
            "probability": p.probability,
            "box": None
            if p.bounding_box is None
            else {k: getattr(p.bounding_box, k) for k in ("left", "top", "width", "height")},
        }
        for p in best
    ]


def predictions_table(rows: list[dict], detection: bool, source: str = "File") -> Table:
    table = Table()
    table.add_column(source)
    table.add_column("Tag")
    table.add_column("Probability", justify="right")
    if detection:
        table.add_column("Box (left,top,width,height)")
    for r in rows:
        cells = [r["file"], r["tag"], percent(r["probability"])]
        if detection:
            b = r["box"]
            cells.append(",".join(f"{b[k]:.3f}" for k in ("left", "top", "width", "height")) if b else "")
        table.add_row(*cells)
    return table


def listing(title: str, columns: tuple[str, ...], rows: list[tuple]) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    return table
