"""Failed-login throttling (issue 16.9): at most ``per_client`` failed logins from one client
address within ``window_s`` seconds, and ``overall`` from all addresses together (so that a spread of
addresses gains little); past either, POST /api/login answers 429 with Retry-After until the oldest
failure leaves the window. A success clears that client's failures. The counts live in the API
process (each process throttles on its own); at most ``max_clients`` addresses are remembered, the
least recent forgotten first."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from threading import Lock


class LoginThrottle:
    """See the module docstring. ``clock`` is injectable for tests."""

    def __init__(
        self,
        per_client: int = 5,
        overall: int = 100,
        window_s: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client, self.overall, self.window_s = per_client, overall, window_s
        self.max_clients, self.clock = max_clients, clock
        self.clients: OrderedDict[str, deque[float]] = OrderedDict()
        self.everyone: deque[float] = deque()
        self.lock = Lock()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        with self.lock:
            now = self.clock()
            mine = self._expire(self.clients.get(client, deque()), now)
            everyone = self._expire(self.everyone, now)
            full = [
                times
                for times, cap in ((mine, self.per_client), (everyone, self.overall))
                if len(times) >= cap
            ]
            waits = [times[0] + self.window_s - now for times in full]
            return max(waits) if waits else None

    def failed(self, client: str) -> None:
        with self.lock:
            now = self.clock()
            self.clients.setdefault(client, deque()).append(now)
            self.clients.move_to_end(client)
            self.everyone.append(now)
            while len(self.clients) > self.max_clients:
                self.clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self.lock:
            self.clients.pop(client, None)

    def _expire(self, times: deque[float], now: float) -> deque[float]:
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
