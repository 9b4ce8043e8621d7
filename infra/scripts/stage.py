"""Stage exactly what one deployable part is built from (Terraform's deploy steps call this; azd packages itself).

    python3 infra/scripts/stage.py functions OUT.zip   the Functions app package (Flex Consumption builds remotely)
    python3 infra/scripts/stage.py trainer OUT_DIR     the trainer image build context (gpu_trainer/Dockerfile)

The patterns below are the same as `local.sources` in infra/terraform/deploy.tf, which hashes them to decide when
to redeploy; tests/infra checks that the two lists agree and that the trainer's covers the Dockerfile's COPY lines.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PARTS = {
    "functions": ("function_app.py", "host.json", "requirements.txt", "functions/**/*.py", "cvcore/**/*.py"),
    "trainer": (
        "requirements.txt",
        "gpu_trainer/Dockerfile",
        "gpu_trainer/requirements.txt",
        "gpu_trainer/**/*.py",
        "cvcore/**/*.py",
    ),
}


def files(part: str, root: Path = ROOT) -> list[Path]:
    """Every file of `part`, relative to the repository root, sorted."""
    found: set[Path] = set()
    for pattern in PARTS[part]:
        matches = [p for p in root.glob(pattern) if p.is_file()]
        if not matches:
            raise FileNotFoundError(f"{part}: nothing matches {pattern!r} under {root}")
        found.update(p.relative_to(root) for p in matches)
    return sorted(found)


def stage_zip(part: str, out: Path, root: Path = ROOT) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files(part, root):
            zf.write(root / rel, rel.as_posix())


def stage_dir(part: str, out: Path, root: Path = ROOT) -> None:
    for rel in files(part, root):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in PARTS:
        print(__doc__, file=sys.stderr)
        return 2
    part, out = argv[0], Path(argv[1])
    if part == "functions":
        stage_zip(part, out)
    else:
        stage_dir(part, out)
    print(f"staged {part} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
