"""Rate limits on the portal's sign-in: failures per school and per client address.

What belongs here: ``SignInLimiter``, kept in the portal process's memory. A school code
may fail ``per_school`` times and a client address ``per_address`` times within
``window_seconds``; after that, sign-in for that code (or from that address) is refused,
without checking the secret, until the oldest failure leaves the window. A success clears
the school's failures, not the address's. Memory is enough for one portal process; a
restart forgets the counts (several portal processes behind a balancer would each count
on their own, so put the limit at the balancer then).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

PER_SCHOOL = 5
PER_ADDRESS = 20
WINDOW_SECONDS = 15 * 60


class SignInLimiter:
    """Failures in a sliding window, by school code and by client address."""

    def __init__(
        self,
        per_school: int = PER_SCHOOL,
        per_address: int = PER_ADDRESS,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_school = per_school
        self.per_address = per_address
        self.window_seconds = window_seconds
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, kind: str, name: str, now: float) -> deque[float]:
        times = self._failures.setdefault((kind, name), deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return times

    def retry_after(self, school_code: str, address: str) -> float:
        """Seconds until this school and address may try again; 0 when they may now."""
        now = self.clock()
        with self._lock:
            waits = [0.0]
            for kind, name, limit in (
                ("school", school_code, self.per_school),
                ("address", address, self.per_address),
            ):
                times = self._recent(kind, name, now)
                if len(times) >= limit:
                    waits.append(times[0] + self.window_seconds - now)
            return max(waits)

    def failed(self, school_code: str, address: str) -> None:
        """Count a failed sign-in against the school and the address."""
        now = self.clock()
        with self._lock:
            self._recent("school", school_code, now).append(now)
            self._recent("address", address, now).append(now)

    def succeeded(self, school_code: str) -> None:
        """Forget the school's failures (the address keeps its own)."""
        with self._lock:
            self._failures.pop(("school", school_code), None)
