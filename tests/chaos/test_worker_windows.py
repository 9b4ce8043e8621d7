"""The worker's visibility and lease windows: production's unless the environment shortens them (the chaos
tests do, so a SIGKILLed job comes back in seconds); a bad value stops the worker with the setting named."""

from __future__ import annotations

import pytest

from gpu_trainer import worker

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


def test_unset_keeps_the_production_windows(monkeypatch):
    monkeypatch.delenv(worker.VISIBILITY_ENV, raising=False)
    assert worker._seconds_from_env(worker.VISIBILITY_ENV, 300, 2, 3600) == 300


def test_a_short_window_is_taken(monkeypatch):
    monkeypatch.setenv(worker.LEASE_ENV, " 15 ")
    assert worker._seconds_from_env(worker.LEASE_ENV, 60, *worker.LEASE_RANGE_S) == 15


@pytest.mark.parametrize(
    "raw, problem", [("soon", "not a whole number"), ("5", "between 15 and 60"), ("61", "got 61")]
)
def test_a_bad_window_is_refused_with_its_name(monkeypatch, raw, problem):
    monkeypatch.setenv(worker.LEASE_ENV, raw)
    with pytest.raises(ValueError, match=problem) as err:
        worker._seconds_from_env(worker.LEASE_ENV, 60, *worker.LEASE_RANGE_S)
    assert worker.LEASE_ENV in str(err.value)


def test_renewal_falls_well_inside_both_windows():
    assert worker.RENEW_EVERY_S * 3 <= min(worker.VISIBILITY_S, worker.LEASE_S)
