"""Timer triggers in the local host: NCRONTAB and TimeSpan schedules, runs on schedule and on startup, and
the admin API's "run this function now" (POST /admin/functions/{name})."""

import threading
from datetime import UTC, datetime

import azure.functions as func
import pytest
import requests

from devhost import Host
from devhost.timer import Schedule
from tests.devhost.helpers import wait_for


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "expression, now, expected",
    [
        ("0 17 3 * * *", "2024-05-01T03:17:00", "2024-05-02T03:17:00"),
        ("0 17 3 * * *", "2024-05-01T03:16:59", "2024-05-01T03:17:00"),
        ("*/15 * * * * *", "2024-05-01T10:00:14.5", "2024-05-01T10:00:15"),
        ("0 */5 * * * *", "2024-05-01T10:58:00", "2024-05-01T11:00:00"),
        ("0 30 9 * * Mon-Fri", "2024-05-03T10:00:00", "2024-05-06T09:30:00"),  # Friday after 9:30 -> Monday
        ("0 0 0 29 Feb *", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 12 1 * 0", "2024-01-01T00:00:00", "2024-09-01T12:00:00"),  # the 1st AND a Sunday, as NCrontab
        ("5,10 0 0 * * *", "2024-05-01T00:00:05", "2024-05-01T00:00:10"),
        ("10-20/5 0 0 * * *", "2024-05-01T00:00:11", "2024-05-01T00:00:15"),
        ("0 * * * *", "2024-05-01T00:00:00", "2024-05-01T01:00:00"),  # five fields: seconds are 0
        ("00:10:00", "2024-05-01T00:00:03", "2024-05-01T00:10:03"),
    ],
)
def test_schedules(expression, now, expected):
    assert Schedule(expression).next_after(at(now)) == at(expected)


@pytest.mark.parametrize(
    "expression", ["", "* * *", "61 * * * * *", "* * * * 13 *", "*/0 * * * * *", "x * * * * *", "00:00:00"]
)
def test_invalid_schedules_are_refused(expression):
    with pytest.raises(ValueError):
        Schedule(expression)


def timer_app(schedule: str, run_on_startup: bool = False):
    calls, lock = [], threading.Lock()
    bp = func.Blueprint()

    @bp.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=run_on_startup)
    def tick(timer: func.TimerRequest) -> None:
        with lock:
            calls.append((timer.past_due, timer.schedule_status.get("Next")))

    @bp.route(route="hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    return app, calls


def test_timer_fires_on_schedule_and_on_startup():
    app, calls = timer_app("* * * * * *", run_on_startup=True)
    with Host(app, port=0):
        wait_for(lambda: len(calls) >= 3, timeout=10, what="three timer runs")
    past_due, following = calls[0]
    assert past_due is False and following is not None


def test_admin_api_runs_a_timer_function_now():
    app, calls = timer_app("0 0 0 1 1 *")  # once a year: only the admin API runs it here
    with Host(app, port=0) as h:
        resp = requests.post(f"{h.base_url}/admin/functions/TICK", json={"input": ""}, timeout=10)
        assert resp.status_code == 202 and len(calls) == 1
        assert requests.post(f"{h.base_url}/admin/functions/nope", json={}, timeout=10).status_code == 404
        assert requests.post(f"{h.base_url}/admin/functions/hello", json={}, timeout=10).status_code == 400
        assert requests.get(f"{h.base_url}/api/hello", timeout=10).text == "hi"


def test_an_invalid_schedule_stops_the_host_from_starting():
    app, _ = timer_app("every day")
    with pytest.raises(ValueError):
        Host(app, port=0)
