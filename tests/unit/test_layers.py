"""The layers of functions/ and cvcore/, read from the source (every import statement, lazy and TYPE_CHECKING
ones included), so an arrow back up fails here with the file, the line and the module it names.

From the bottom up; a module may import its own package and anything in a lower layer, nothing else:

    cvcore                      shared with gpu_trainer and the edge container; imports nothing of functions/
    functions.domain            records and storage ports every API reads
    functions.web | portal      request parsing, routing, the HTTP edge; the portal's assets (siblings)
    functions.prediction        published iterations, the session cache, stored predictions
    functions.training          the Training API (quick test, smart labeler and proposals call prediction)
    functions.vision            Image Analysis on top of training and prediction
    functions.adapters          Azure Storage implementations of the ports above; only bootstrap builds them
    functions.bootstrap         the composition root
    trigger modules             http_*, blob_ingest, queue_*, purge: nothing imports them but function_app
    function_app

Besides the order: no module imports a private (_name) module or name of another package.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TRIGGERS = (
    "functions.blob_ingest",
    "functions.http_portal",
    "functions.http_prediction",
    "functions.http_training",
    "functions.http_vision",
    "functions.purge",
    "functions.queue_events",
    "functions.queue_imports",
)
# Bottom first. Packages in one tuple are siblings: neither may import the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cvcore",),
    ("functions.domain",),
    ("functions.web", "functions.portal"),
    ("functions.prediction",),
    ("functions.training",),
    ("functions.vision",),
    ("functions.adapters",),
    ("functions.bootstrap",),
    TRIGGERS,
    ("function_app",),
)
PACKAGE_DOCSTRING = "functions"  # functions/__init__.py: a docstring, imports nothing
MAX_LINES = 400
LONG_FILE_REASON = (
    "One file because"  # the docstring line a longer file of functions/ or gpu_trainer/ must carry
)


@dataclass(frozen=True)
class Import:
    file: str  # relative to the scanned root
    line: int
    source: str  # the importing module
    target: str  # the imported module, or module.name for `from module import name`


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in `path`, relative ones resolved against its package."""
    source = module_name(root, path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, source, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [Import(rel, node.lineno, source, f"{module}.{a.name}") for a in node.names]
    return found


def group_of(module: str) -> str | None:
    """The LAYERS entry a module belongs to (its longest listed prefix), None for modules outside them."""
    names = [n for layer in LAYERS for n in layer if module == n or module.startswith(n + ".")]
    return max(names, key=len) if names else None


def rank_of(group: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if group in layer)


def scanned_files(root: Path) -> list[Path]:
    files = sorted(root.glob("functions/**/*.py")) + sorted(root.glob("cvcore/**/*.py"))
    return files + [p for p in (root / "function_app.py",) if p.exists()]


def violations(root: Path) -> list[str]:
    """One line per forbidden import, `file:line -> target (why)`, and one per module in no layer."""
    out = []
    for path in scanned_files(root):
        source = module_name(root, path)
        src = group_of(source)
        if src is None and source != PACKAGE_DOCSTRING:
            out.append(
                f"{path.relative_to(root).as_posix()}: module {source} is in no layer; add it to LAYERS"
            )
            continue
        for imp in imports_of(root, path):
            where = f"{imp.file}:{imp.line} -> {imp.target}"
            dst = group_of(imp.target)
            if dst is None or dst == src:
                continue
            if src is None:
                out.append(f"{where} (functions/__init__.py imports nothing of the app)")
            elif rank_of(dst) > rank_of(src):
                out.append(f"{where} ({src} is below {dst}: an arrow back up)")
            elif rank_of(dst) == rank_of(src):
                kind = "a trigger module" if dst in TRIGGERS else "a sibling"
                out.append(f"{where} ({dst} is {kind} of {src})")
            if any(part.startswith("_") and part != "__init__" for part in imp.target.split(".")):
                out.append(f"{where} (a private name of {dst})")
    return out


def test_functions_and_cvcore_keep_their_layers():
    found = violations(ROOT)
    assert not found, "imports against the layers (tests/unit/test_layers.py):\n" + "\n".join(found)


def test_long_files_say_why_they_stay_whole():
    long = []
    for path in sorted((ROOT / "functions").glob("**/*.py")) + sorted((ROOT / "gpu_trainer").glob("**/*.py")):
        text = path.read_text()
        if len(text.splitlines()) > MAX_LINES and LONG_FILE_REASON not in (
            ast.get_docstring(ast.parse(text)) or ""
        ):
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
    assert not long, (
        f"over {MAX_LINES} lines without a '{LONG_FILE_REASON} ...' line in the docstring: {long}"
    )


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_synthetic_tree_shows_each_kind_of_violation(tmp_path):
    """The checker itself: a tree with one import of each forbidden kind, and allowed ones beside them."""
    _tree(
        tmp_path,
        {
            "cvcore/__init__.py": "",
            "cvcore/layout.py": "import json\n",
            "cvcore/bad.py": "from functions.domain import records\n",
            "functions/__init__.py": '"""app"""\n',
            "functions/bootstrap.py": "from .training import train\nfrom .adapters import blobs\n",
            "functions/http_training.py": "from . import bootstrap\n",
            "functions/domain/__init__.py": "",
            "functions/domain/records.py": "from cvcore import layout\n",
            "functions/adapters/__init__.py": "",
            "functions/adapters/blobs.py": "from ..domain.records import x\n",
            "functions/web/__init__.py": "",
            "functions/web/edge.py": "\n\ndef serve():\n    from .. import bootstrap\n",
            "functions/portal/__init__.py": "",
            "functions/portal/assets.py": "from ..web import edge\n",
            "functions/prediction/__init__.py": "",
            "functions/prediction/service.py": "from functions.training.records import Project\n",
            "functions/training/__init__.py": "",
            "functions/training/train.py": (
                "from ..prediction import service\nfrom ..http_training import bp\nfrom ..adapters.blobs import _page\n"
            ),
            "functions/vision/__init__.py": "",
            "functions/vision/models.py": "from ..training.train import x\nfrom ..prediction.service import y\n",
            "functions/queue_events.py": "from .http_training import bp\n",
            "function_app.py": "from functions import http_training\n",
        },
    )
    assert sorted(violations(tmp_path)) == sorted(
        [
            "cvcore/bad.py:1 -> functions.domain.records (cvcore is below functions.domain: an arrow back up)",
            "functions/web/edge.py:4 -> functions.bootstrap (functions.web is below functions.bootstrap: an arrow back up)",
            "functions/portal/assets.py:1 -> functions.web.edge (functions.web is a sibling of functions.portal)",
            "functions/prediction/service.py:1 -> functions.training.records.Project "
            "(functions.prediction is below functions.training: an arrow back up)",
            "functions/training/train.py:2 -> functions.http_training.bp "
            "(functions.training is below functions.http_training: an arrow back up)",
            "functions/training/train.py:3 -> functions.adapters.blobs._page "
            "(functions.training is below functions.adapters: an arrow back up)",
            "functions/training/train.py:3 -> functions.adapters.blobs._page (a private name of functions.adapters)",
            "functions/queue_events.py:1 -> functions.http_training.bp "
            "(functions.http_training is a trigger module of functions.queue_events)",
        ]
    )


def test_a_private_name_is_allowed_inside_its_own_package_only(tmp_path):
    _tree(
        tmp_path,
        {
            "functions/__init__.py": "",
            "functions/domain/__init__.py": "",
            "functions/domain/records.py": "from .ports import _is_guid\n",
            "functions/domain/ports.py": "",
            "functions/training/__init__.py": "",
            "functions/training/projects.py": "from ..domain.ports import _is_guid\n",
        },
    )
    assert violations(tmp_path) == [
        "functions/training/projects.py:1 -> functions.domain.ports._is_guid (a private name of functions.domain)"
    ]


def test_a_module_outside_every_layer_is_reported(tmp_path):
    _tree(
        tmp_path,
        {
            "functions/__init__.py": "",
            "functions/newpkg/__init__.py": "",
            "functions/newpkg/a.py": "import os\n",
        },
    )
    assert violations(tmp_path) == [
        "functions/newpkg/__init__.py: module functions.newpkg is in no layer; add it to LAYERS",
        "functions/newpkg/a.py: module functions.newpkg.a is in no layer; add it to LAYERS",
    ]
