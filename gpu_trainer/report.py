"""Training report images from the out-of-fold evaluation: a precision-recall curve per tag
(`pr_curves.png`) and a confusion matrix (`confusion_matrix.png`). matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvcore import metrics

PR_CURVES = "pr_curves.png"
CONFUSION = "confusion_matrix.png"
MAX_CURVES = 20  # more tags than this: the 20 with the most images, so the legend stays readable


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _split_name(folds) -> str:
    return "held-out split" if folds == 1 else f"{folds}-fold CV"


def _pr_figure(plt, curves, title: str, path: Path) -> Path:
    """One step curve per (legend, recall, precision), most populous tags first."""
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=100)
    for legend, recall, precision in curves:
        ax.step(np.r_[0.0, recall], np.r_[1.0, precision], where="post", label=legend)
    ax.set_xlim(0, 1.01), ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall"), ax.set_ylabel("precision")
    ax.set_title(title)
    if curves:
        ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def detection_curves(evaluation: dict, overlap: float = 0.5) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(legend, recall, precision) per tag with true boxes, most boxes first: a detection counts as right when
    it overlaps an unclaimed true box of its tag by IoU >= `overlap` (cvcore.boxes, as the evaluation)."""
    from cvcore import boxes

    images = evaluation.get("images") or []
    labels = sorted(evaluation.get("labels") or [], key=lambda lab: int(lab["index"]))
    counts = {
        int(lab["index"]): sum(
            1 for im in images for t in im.get("truth", []) if int(t[0]) == int(lab["index"])
        )
        for lab in labels
    }
    curves = []
    for lab in sorted(labels, key=lambda lab: -counts[int(lab["index"])])[:MAX_CURVES]:
        if counts[int(lab["index"])]:
            precision, recall, _ = boxes.pr_curve(images, int(lab["index"]), overlap)
            scores, hits, _, n_truth = boxes.scored(images, int(lab["index"]), overlap)
            curves.append(
                (
                    f"{lab['name']} (AP@{overlap:.2f} {boxes.average_precision(scores, hits, n_truth):.2f})",
                    recall,
                    precision,
                )
            )
    return curves


def write_detection_report(evaluation: dict, out_dir, overlap: float = 0.5) -> list[Path]:
    """A detector's report: the precision-recall curve of each tag (`detection_curves`) as pr_curves.png."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"Precision-recall per tag, IoU >= {overlap:.2f} ({_split_name(evaluation.get('folds'))})"
    return [_pr_figure(plt, detection_curves(evaluation, overlap), title, out_dir / PR_CURVES)]


def write_report(evaluation: dict, labels, out_dir) -> list[Path]:
    """Write the PNGs into out_dir; returns their paths. `labels` (cvcore.artifacts.Label or dicts) names
    the tags; the evaluation's own label list is used where they disagree in length."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ev_labels = evaluation.get("labels") or []
    names = [
        getattr(lab, "name", None) or (lab.get("name") if isinstance(lab, dict) else str(lab))
        for lab in (labels or [])
    ]
    if len(names) != len(ev_labels):
        names = [lab.get("name", str(i)) for i, lab in enumerate(ev_labels)]
    images = evaluation.get("images") or []
    scores = np.array([im["scores"] for im in images], dtype=np.float64).reshape(len(images), len(ev_labels))
    truth = np.zeros_like(scores, dtype=bool)
    for i, im in enumerate(images):
        for t in im.get("truth") or []:
            truth[i, int(t)] = True
    written = []

    # precision-recall curves
    regular = [j for j, lab in enumerate(ev_labels) if lab.get("type", "Regular") != metrics.NEGATIVE]
    regular = sorted(regular, key=lambda j: -truth[:, j].sum())[:MAX_CURVES]
    curves = []
    for j in regular:
        if truth[:, j].any():
            recall, precision, _ = metrics.pr_curve(scores[:, j], truth[:, j])
            curves.append(
                (
                    f"{names[j]} (AP {metrics.average_precision(scores[:, j], truth[:, j]):.2f})",
                    recall,
                    precision,
                )
            )
    folds = evaluation.get("folds")
    written.append(
        _pr_figure(plt, curves, f"Precision-recall per tag ({_split_name(folds)})", out_dir / PR_CURVES)
    )

    # confusion matrix (argmax)
    cm_names, matrix = metrics.confusion_matrix(evaluation)
    size = max(4.0, min(14.0, 0.5 * len(cm_names) + 3))
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cm_names)), labels=cm_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(cm_names)), labels=cm_names, fontsize=8)
    ax.set_xlabel("predicted (highest probability)"), ax.set_ylabel("truth")
    top = matrix.max() if matrix.size else 0
    if len(cm_names) <= 30:
        for r in range(matrix.shape[0]):
            for c in range(matrix.shape[1]):
                if matrix[r, c]:
                    ax.text(
                        c,
                        r,
                        str(matrix[r, c]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if matrix[r, c] > top / 2 else "black",
                    )
    ax.set_title("Confusion matrix (out-of-fold)")
    fig.tight_layout()
    path = out_dir / CONFUSION
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


def advice_page(advice: dict) -> str:
    """The model doctor's findings as one self-contained HTML page (report/advice.html): every text escaped,
    no script, no external resource."""
    from html import escape

    rows = []
    for f in advice.get("findings", []):
        ids = ", ".join(escape(i) for i in f.get("image_ids", [])[:12])
        more = len(f.get("image_ids", [])) - 12
        rows.append(
            f'<li class="{escape(f["severity"])}"><b>{escape(f["severity"])}</b> '
            f"<code>{escape(f['kind'])}</code> {escape(f['message'])}"
            + (f"<br><small>images: {ids}{f' and {more} more' if more > 0 else ''}</small>" if ids else "")
            + "</li>"
        )
    curve = advice.get("learning_curve") or {}
    curve_rows = ""
    if curve.get("sizes"):
        curve_rows = (
            "<h2>Learning curve</h2><table><tr><th>training images</th><th>top-1</th></tr>"
            + "".join(
                f"<tr><td>{s:g}</td><td>{a:.3f} &plusmn; {d:.3f}</td></tr>"
                for s, a, d in zip(curve["sizes"], curve["top1"], curve["top1_sd"], strict=True)
            )
            + (
                f"<tr><td>{2 * curve['sizes'][-1]:g} (expected)</td><td>{curve['predicted_top1_when_doubled']:.3f} "
                f"&plusmn; {curve['plus_minus']:.3f}</td></tr></table>"
            )
        )
    checks = "".join(
        f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in advice.get("checks", {}).items()
    )
    body = "".join(rows) or "<li>No problem found in the data.</li>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Model doctor</title><style>'
        "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "li{margin:.6rem 0}.high b{color:#b00020}.medium b{color:#a15c00}.low b{color:#555}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .6rem}</style></head><body>"
        f"<h1>Model doctor: how to improve this model</h1><p>{len(advice.get('findings', []))} findings "
        f"({escape(advice.get('task', ''))}, {advice.get('images', '?')} images, computed in "
        f"{advice.get('seconds', 0):.1f} s).</p><ol>{body}</ol>{curve_rows}"
        f"<h2>Checks</h2><ul>{checks}</ul></body></html>"
    )
