"""Work ahead of the model: the next batches made in a background thread, a bounded few at a time.

A scan over image files (_image_scan.py) spends its time in two places: decoding and resizing
the files, and running the model. PIL's decoders and resampling and ONNX Runtime all release
the GIL, so they can run at once: `prefetched(items, depth)` pulls the items of an iterator in
a daemon thread and hands them over through a queue of at most `depth` items, so memory stays
bounded (the consumer's item, `depth` waiting and the one being made). An exception in the
thread is raised in the consumer at the item where it happened; when the consumer stops early
(it breaks, fails, or Ctrl-C interrupts it) the thread is told to stop, and is joined, before
the generator returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

# Seconds between the thread's checks whether the consumer has gone, while the queue is full.
POLL_S = 0.05
# Seconds to wait for the thread at the end; it is a daemon, so a stuck producer (a URL that
# does not answer) never keeps the interpreter alive.
JOIN_S = 5.0


class _Failed:
    """The producer's exception, carried through the queue."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetched(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """The items of `items`, made in a background thread at most `depth` ahead of the caller."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        """Queue `value` unless the consumer has gone; whether it was queued."""
        while not stop.is_set():
            try:
                handoff.put(value, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, who raises it
            put(_Failed(error))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="semdict-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = handoff.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value
    finally:
        stop.set()
        thread.join(JOIN_S)
