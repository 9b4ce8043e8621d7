"""Predictions stored after the reply: order kept, nothing dropped when full, failures contained."""

import threading

from functions.prediction.recorder import REPLY_FIRST_S, Recorder


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
    while recorder._queue.qsize():
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


def test_an_idle_recorder_lets_the_reply_go_first_and_a_backlog_runs_back_to_back():
    slept, done, gate = [], [], threading.Event()
    recorder = Recorder(sleep=lambda s: slept.append((s, len(done))))
    recorder.submit(lambda: gate.wait(5))  # wakes the idle worker: it yields once before starting
    for i in range(3):  # queued behind it: no yield between them
        recorder.submit(lambda i=i: done.append(i))
    gate.set()
    assert recorder.flush(5) and done == [0, 1, 2]
    assert slept == [(REPLY_FIRST_S, 0)]
    recorder.submit(lambda: done.append(3))  # idle again: yields again
    assert recorder.flush(5) and slept == [(REPLY_FIRST_S, 0), (REPLY_FIRST_S, 3)]
