"""Store predictions after the reply: a bounded queue drained by one background thread.

Storing a prediction (check + normalise the image, its thumbnail, two blob uploads, two table rows) costs
more than the model itself; the caller has its answer as soon as the model has run. The price: a stored
prediction appears in queries a few milliseconds after the reply, and one that was still queued when the
process died is not stored (the reply was still right). Custom Vision's own prediction store is eventual
in the same way. When the queue is full the work runs in the caller's thread (back-pressure, nothing is
dropped); `flush` waits for what is queued (tests, shutdown).

An idle recorder lets the reply go first: the work it wakes up for starts REPLY_FIRST_S later. Storing is
mostly Python (the storage SDK), and a thread that holds the interpreter lock makes the thread writing the
reply wait up to the switch interval (5 ms) for it: benchmarks/prediction.py measured storing add 0.26x of
the bare model time to a reply without this, and none with it. Queued work runs back to back.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
# each queued prediction holds its upload and its decoded image (~1 MB for a 640x480 photo): 256 of them
# held the host at 820 MB after 16 storing clients (benchmarks/prediction.py), and malloc keeps a peak
MAX_PENDING = 32
REPLY_FIRST_S = 0.003


class Recorder:
    def __init__(self, max_pending: int = MAX_PENDING, sleep: Callable[[float], None] = time.sleep):
        self._sleep = sleep
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failures = 0
        atexit.register(self.flush, 10.0)

    def submit(self, work: Callable[[], None]) -> None:
        self._start()
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self._run(work)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is stored (or failed); False on timeout."""
        done = threading.Event()

        def wait():
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="prediction-recorder", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        idle = True
        while True:
            work = self._queue.get()
            if idle:
                self._sleep(REPLY_FIRST_S)  # woken by a request that is still writing its reply
            try:
                self._run(work)
            finally:
                idle = self._queue.empty()  # before task_done, so a flush returns with it known
                self._queue.task_done()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            self.failures += 1
            log.exception("a prediction could not be stored")
