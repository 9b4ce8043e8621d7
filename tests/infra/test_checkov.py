"""checkov scans both flavours: no failed check, and every skip sits beside its resource and says why."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from .iac import CHECKOV, INFRA, checkov_available, run_checkov

FLAVOURS = ("bicep", "terraform")
SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+):(.*)")


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    if not checkov_available():
        pytest.fail(f"{CHECKOV} is missing: `make install` creates it (infra/requirements-iac.txt)")
    return run_checkov()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_checkov_parses_and_scans(reports, flavour):
    summary = reports[flavour]["summary"]
    assert summary["parsing_errors"] == 0, reports[flavour]["results"].get("parsing_errors")
    assert summary["resource_count"] > 10
    assert summary["passed"] > 0


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_failed_checks(reports, flavour):
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in reports[flavour]["results"].get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_skip_says_why(reports, flavour):
    for check in reports[flavour]["results"].get("skipped_checks", []):
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason.strip()) >= 20, f"{check['check_id']} on {check['resource']}: {reason!r}"


def _skip_comments(flavour: str) -> dict[str, set[str]]:
    pattern = "*.bicep" if flavour == "bicep" else "terraform/*.tf"
    found = defaultdict(set)
    for path in INFRA.rglob(pattern) if flavour == "bicep" else INFRA.glob(pattern):
        for line in path.read_text().splitlines():
            match = SKIP.search(line)
            if match:
                found[path.name].add(match.group(1))
    return found


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_stale_skips(reports, flavour):
    """A skip comment whose check no longer fires there would hide the next real finding."""
    used = defaultdict(set)
    for check in reports[flavour]["results"].get("skipped_checks", []):
        used[check["file_path"].rsplit("/", 1)[-1]].add(check["check_id"])
    for file, checks in _skip_comments(flavour).items():
        assert checks <= used[file], f"{file}: skips for checks that do not run there: {checks - used[file]}"
