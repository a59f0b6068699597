"""Streaming verification: submit candidates as they are decoded, collect verdicts as they complete.

    with pool.stream(max_in_flight=8) as stream:
        for tag, candidate in decoded():          # submit blocks while 8 candidates are being verified
            stream.submit(candidate, tag)
            for tag, verdict in stream.poll():    # whatever finished meanwhile, without waiting
                ...
        for tag, verdict in stream.completed():   # the rest, as they finish
            ...

Backpressure: ``submit`` blocks while ``max_in_flight`` submitted candidates are unfinished, so the pool's queue
never holds more than that for a stream. Finished verdicts wait (small records) until the caller collects them.
Leaving the ``with`` block normally waits for the unfinished candidates; leaving it by an exception (a
``KeyboardInterrupt`` included) cancels them: the ones not started never run, the running ones' processes are
killed at once. Either way no candidate process is left running when ``close`` returns.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from next_jax.execution.verdict import Candidate, Verdict

if TYPE_CHECKING:
    from next_jax.execution.pool import VerificationPool
    from next_jax.execution.sandbox import Child


class Cancellation:
    """Kills the children of the runs that share it, now (``cancel``) and from then on (``watch``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, Child] = {}
        self.cancelled = False

    def watch(self, child: Child) -> None:
        with self._lock:
            late = self.cancelled
            if not late:
                self._children[id(child)] = child
        if late:
            child.kill()

    def forget(self, children: list[Child]) -> None:
        with self._lock:
            for child in children:
                self._children.pop(id(child), None)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.kill()


class VerdictStream:
    """Made by ``VerificationPool.stream``; see the module docstring."""

    def __init__(self, pool: VerificationPool, max_in_flight: int, details: bool = False,
                 all_tests: bool = False) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.pool, self.max_in_flight, self.details, self.all_tests = pool, max_in_flight, details, all_tests
        self._room = threading.BoundedSemaphore(max_in_flight)
        self._cond = threading.Condition()
        self._done: collections.deque[tuple[Any, Verdict]] = collections.deque()
        self._futures: set[concurrent.futures.Future] = set()
        self._cancellation = Cancellation()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Candidates submitted and not finished."""
        with self._cond:
            return len(self._futures)

    def submit(self, candidate: Candidate, tag: Any = None) -> None:
        """Queue ``candidate`` for verification; blocks while ``max_in_flight`` are unfinished. ``tag`` comes back
        with its verdict (default: the candidate's id)."""
        if self._closed:
            raise RuntimeError("stream is closed")
        self._room.acquire()
        try:
            future = self.pool.submit(candidate, self.details, self.all_tests, self._cancellation)
        except BaseException:
            self._room.release()
            raise
        with self._cond:
            self._futures.add(future)
        key = candidate.id if tag is None else tag
        future.add_done_callback(lambda f: self._finished(f, key))

    def _finished(self, future: concurrent.futures.Future, tag: Any) -> None:
        verdict = None if future.cancelled() or future.exception() is not None else future.result()
        with self._cond:
            self._futures.discard(future)
            if verdict is not None and not self._cancellation.cancelled:
                self._done.append((tag, verdict))
            self._cond.notify_all()
        self._room.release()

    def poll(self) -> list[tuple[Any, Verdict]]:
        """The verdicts finished since the last collection, without waiting."""
        with self._cond:
            out = list(self._done)
            self._done.clear()
        return out

    def completed(self, timeout: float | None = None) -> Iterator[tuple[Any, Verdict]]:
        """``(tag, verdict)`` pairs as they finish, until none of the submitted candidates is left unfinished
        and uncollected, or until ``timeout`` seconds have passed (then the unfinished ones stay pending: collect
        them later; no exception)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while not self._done and self._futures:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    self._cond.wait(left)
                if not self._done:
                    return
                item = self._done.popleft()
            yield item

    def cancel(self) -> None:
        """Drop every unfinished candidate: the ones not started never run, running ones are killed now.
        Verdicts finished before remain collectable."""
        self._cancellation.cancel()

    def close(self, cancel: bool = False) -> None:
        """Wait for the unfinished candidates (or ``cancel`` them first); afterwards no candidate process of this
        stream runs. Interrupted while waiting (e.g. ``KeyboardInterrupt``), it cancels, finishes, and re-raises."""
        self._closed = True
        if cancel:
            self.cancel()
        try:
            self._wait()
        except BaseException:
            self.cancel()
            self._wait()
            raise

    def _wait(self) -> None:
        with self._cond:
            while self._futures:
                self._cond.wait()

    def __enter__(self) -> VerdictStream:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(cancel=exc_type is not None)
