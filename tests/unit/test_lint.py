"""The lint rules in pyproject.toml ([tool.ruff.lint]: undefined or unused names, syntax errors, bugbear,
import order, pyupgrade, stale noqa) and `ruff format`'s layout hold over the whole tree; mypy ([tool.mypy])
finds nothing in the packages it checks."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_tree_is_formatted():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, "run `make fmt`:\n" + done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_finds_nothing():
    # incremental (.mypy_cache): a cold run takes ~40 s on 2 cores, a warm one a few seconds
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
