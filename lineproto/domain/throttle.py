"""Login throttling: failed logins make the next ones wait, and past a budget stop them.

Pure logic with an injected clock: no sockets, no reply codes, no threads of
its own (one lock, since connections on several threads share one throttle).

Two kinds of key are counted, each in its own :class:`FailureWindow`:

* the **source address** (the peer's IP, port dropped): one address guessing
  at many accounts, or at one over many connections;
* the **account** name (unknown names too, so that probing for names gives
  nothing away): many addresses guessing at one account.

For each key, failures within ``window`` seconds count. Past ``free`` of them
each failure's reply is held back by a delay that doubles per failure (from
``first_delay`` up to ``max_delay``): a reconnect does not reset it, since the
count belongs to the key, not the connection. Past ``budget`` failures the key
is *locked* until its oldest counted failure leaves the window: a login
attempt then gets "try again in N s" without any password hashing at all. A
good login clears its address's and its account's failures; an admin can
clear a lock (:meth:`LoginThrottle.unlock`).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures one key may have, and what they cost. Times in seconds."""

    window: float = 900.0  # failures older than this are forgotten
    free: int = 3  # failures without any delay
    first_delay: float = 1.0  # the delay after the first failure past ``free``
    max_delay: float = 16.0
    budget: int = 10  # failures within ``window`` after which the key is locked

    @classmethod
    def with_budget(cls, budget: int, window: float) -> ThrottlePolicy:
        """A policy whose first third of the budget costs no delay (the daemon's options)."""
        return cls(window=window, free=budget // 3, budget=budget)

    def __post_init__(self) -> None:
        if not (self.window > 0 and 0 <= self.free < self.budget and 0 < self.first_delay <= self.max_delay):
            raise ValueError(f"inconsistent throttle policy: {self}")

    def delay(self, failures: int) -> float:
        """Seconds the reply to failure number ``failures`` (1-based) is held back."""
        if failures <= self.free:
            return 0.0
        return float(min(self.first_delay * 2 ** (failures - self.free - 1), self.max_delay))


#: Defaults per key kind: an address may fail more often than an account (several people share
#: a NAT address), an account less (a person mistypes a few times, a guesser millions).
ADDRESS_POLICY = ThrottlePolicy(budget=30, free=10)
ACCOUNT_POLICY = ThrottlePolicy(budget=10, free=3)


class FailureWindow:
    """Failure times per key within one policy's window; keys with none are dropped."""

    def __init__(self, policy: ThrottlePolicy, max_keys: int = 100_000):
        self.policy = policy
        self.max_keys = max_keys  # bounded memory whatever the attacker sends
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = now - self.policy.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def count(self, key: str, now: float) -> int:
        times = self._recent(key, now)
        return len(times) if times else 0

    def locked_for(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0 if it may now)."""
        times = self._recent(key, now)
        if times is None or len(times) < self.policy.budget:
            return 0.0
        # the lock ends when enough failures have aged out to be under budget again
        return times[len(times) - self.policy.budget] + self.policy.window - now

    def add(self, key: str, now: float) -> int:
        """Record a failure; the number of failures ``key`` now has in the window."""
        times = self._recent(key, now)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._forget_oldest()
            times = self._failures[key] = deque(maxlen=self.policy.budget)
        times.append(now)
        return len(times)

    def oldest(self, key: str) -> float:
        """When the oldest failure still counted for ``key`` happened (this window's clock)."""
        return self._failures[key][0]

    def clear(self, key: str) -> bool:
        return self._failures.pop(key, None) is not None

    def _forget_oldest(self) -> None:
        oldest = min(self._failures, key=lambda key: self._failures[key][-1])
        del self._failures[oldest]

    def __len__(self) -> int:
        return len(self._failures)


@dataclass(frozen=True)
class Verdict:
    """What a login attempt may do: ``retry_after`` > 0 means refused without checking the password."""

    retry_after: float = 0.0
    locked: str = ""  # "address" or "account": what is locked
    first: bool = False  # the first refusal of this lock (log it once, not per attempt)

    @property
    def allowed(self) -> bool:
        return self.retry_after <= 0

    @property
    def retry_seconds(self) -> int:
        """Whole seconds to tell the client (rounded up, at least 1)."""
        return max(1, math.ceil(self.retry_after))


ALLOWED = Verdict()


class LoginThrottle:
    """The failure windows of one daemon, for addresses and accounts; thread-safe."""

    def __init__(
        self,
        address_policy: ThrottlePolicy = ADDRESS_POLICY,
        account_policy: ThrottlePolicy = ACCOUNT_POLICY,
        clock: Callable[[], float] | None = None,
        unlock_requested: Callable[[str, float], bool] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ):
        """``unlock_requested(key, since)``: True (once) if an admin asked to end the lock of
        ``key`` at or after ``since`` (Unix time, ``wall_clock``'s); asked only of locked keys."""
        import time

        self.addresses = FailureWindow(address_policy)
        self.accounts = FailureWindow(account_policy)
        self.clock = clock if clock is not None else time.monotonic
        self.wall_clock = wall_clock if wall_clock is not None else time.time
        self.unlock_requested = unlock_requested
        self._lock = threading.Lock()
        self._announced: set[tuple[str, str]] = set()  # (kind, key) locked, first refusal reported

    def check(self, address: str, account: str) -> Verdict:
        """Before hashing a password: may this address try this account now?"""
        verdict, key, since = self._verdict(address, account)
        if verdict.allowed or self.unlock_requested is None:
            return verdict
        if self.unlock_requested(key, since):  # outside the lock: it asks the store
            self.unlock(key)
            return self._verdict(address, account)[0]
        return verdict

    def _verdict(self, address: str, account: str) -> tuple[Verdict, str, float]:
        """The verdict, and for a lock its key and when (wall clock) its oldest counted failure was."""
        now = self.clock()
        with self._lock:
            for kind, window, key in (("address", self.addresses, address), ("account", self.accounts, account)):
                wait = window.locked_for(key, now)
                if wait > 0:
                    first = (kind, key) not in self._announced
                    self._announced.add((kind, key))
                    since = self.wall_clock() - (now - window.oldest(key))
                    return Verdict(wait, kind, first), key, since
                self._announced.discard((kind, key))
        return ALLOWED, "", 0.0

    def failed(self, address: str, account: str) -> float:
        """Record a failed login; the seconds its reply is to be held back."""
        now = self.clock()
        with self._lock:
            by_address = self.addresses.add(address, now)
            by_account = self.accounts.add(account, now)
        return max(self.addresses.policy.delay(by_address), self.accounts.policy.delay(by_account))

    def succeeded(self, address: str, account: str) -> None:
        """A good login: the address and the account start afresh."""
        with self._lock:
            self.addresses.clear(address)
            self.accounts.clear(account)
            self._announced.discard(("address", address))
            self._announced.discard(("account", account))

    def unlock(self, key: str) -> bool:
        """Forget the failures of an account or an address (an admin's decision); True if there were any."""
        with self._lock:
            self._announced.discard(("account", key))
            self._announced.discard(("address", key))
            return self.accounts.clear(key) | self.addresses.clear(key)
