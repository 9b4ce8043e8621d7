"""Predictions stored after the reply: order kept, nothing dropped when full, failures contained."""

import threading

from functions.prediction.recorder import Recorder


def test_work_runs_in_the_background_in_order_and_flush_waits_for_it():
    recorder, done, gate = Recorder(), [], threading.Event()
    recorder.submit(lambda: gate.wait(5))
    for i in range(5):
        recorder.submit(lambda i=i: done.append((i, threading.current_thread().name)))
    assert done == []  # the caller did not wait
    gate.set()
    assert recorder.flush(5)
    assert [i for i, _ in done] == [0, 1, 2, 3, 4] and {name for _, name in done} == {"prediction-recorder"}


def test_a_full_queue_runs_the_work_in_the_callers_thread():
    recorder, gate, where = Recorder(max_pending=1), threading.Event(), []
    recorder.submit(lambda: gate.wait(5))  # taken by the worker, which then blocks
    while recorder._queue.qsize():  # noqa: SLF001 - wait until the worker holds it
        pass
    recorder.submit(lambda: None)  # fills the queue
    recorder.submit(lambda: where.append(threading.current_thread().name))
    assert where == [threading.current_thread().name]  # back-pressure, not loss
    gate.set()
    assert recorder.flush(5)


def test_a_failure_is_counted_and_the_next_work_still_runs():
    recorder, done = Recorder(), []
    recorder.submit(lambda: 1 / 0)
    recorder.submit(lambda: done.append(1))
    assert recorder.flush(5) and done == [1] and recorder.failures == 1
