"""The storage interface the commands use, and its errors.

A store keeps users, players' tables (bankroll, open bets, rounds), the spin
audit trail, bet receipts (slips), the cashier's ledger, the meter roster, held jobs and every reading submission. Every
state-changing call returns only after its transaction is durable; a call that
only reads sees every change acknowledged before it started. One
implementation of the methods (``sqlite.SqlStore``) runs on SQLite (``sqlite.py``,
the default) and on PostgreSQL (``postgres.py``, ``--db postgresql://...``, shared
by several daemons); commands and domain code do not know which.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from ..domain.accounts import User
from ..domain.meters import Meters
from ..domain.roulette import ChipAudit, CreditRecord, HistoryEntry, Limits, Slip, Table
from .labels import LabelPolicy, LabelRecord

T = TypeVar("T")


class StorageError(Exception):
    """A storage failure (locked, read-only, I/O); nothing was changed. Retrying may work."""


class StorageFull(StorageError):
    """The disk or database is full; nothing was changed."""


class StoreOpenError(Exception):
    """The database cannot be opened; the message is one line for the operator."""


class Store(ABC):
    """Durable state shared by every session (and, with PostgreSQL, every daemon)."""

    # -- users
    @abstractmethod
    def get_user(self, name: str) -> User | None: ...

    @abstractmethod
    def put_user(self, user: User) -> None:
        """Add or replace a user."""

    @abstractmethod
    def request_unlock(self, key: str) -> None:
        """Ask the daemon to end the failed-login lock of ``key`` (an account or an address)."""

    @abstractmethod
    def take_unlock_request(self, key: str, since: float) -> bool:
        """True, once, if an unlock of ``key`` was asked for at or after ``since`` (Unix time)."""

    @abstractmethod
    def delete_user(self, name: str) -> bool: ...

    @abstractmethod
    def list_users(self) -> list[User]: ...

    # -- players
    @abstractmethod
    def update_table(self, player: str, start_bankroll: int, limits: Limits, change: Callable[[Table], T]) -> T:
        """Run ``change`` on the player's table in one transaction and return its result.

        The table is created with ``start_bankroll`` on first use. If ``change``
        raises, nothing is stored. A :class:`~lineproto.domain.roulette.SpinResult`
        returned by ``change`` is recorded in the spin audit trail in the same
        transaction.
        """

    @abstractmethod
    def load_table(self, player: str, limits: Limits) -> Table | None:
        """The player's table as last committed, or None if they never played."""

    @abstractmethod
    def audit(self, player: str) -> dict:
        """``start``, ``spins``, ``staked``, ``returned``: chips are conserved when
        bankroll + open bets == start + returned - staked."""

    @abstractmethod
    def chip_audits(self) -> list[ChipAudit]:
        """Every player's chips against their start, credits and net results (``daemon.py check``)."""

    # -- receipts, history and the cashier
    @abstractmethod
    def slip(self, player: str, number: int) -> Slip | None:
        """The player's bet receipt ``number`` (open, cleared or settled), or None."""

    @abstractmethod
    def history(self, player: str, count: int) -> list[HistoryEntry]:
        """The player's newest ``count`` settled rounds and cashier's entries, newest first."""

    @abstractmethod
    def ledger(self, player: str) -> list[CreditRecord]:
        """Every cashier's entry of the player, oldest first."""

    @abstractmethod
    def credit(
        self, player: str, by: str, amount: int, reason: str, start_bankroll: int, limits: Limits
    ) -> CreditRecord:
        """Add ``amount`` chips (negative: remove) to the player's bankroll and its ledger, in one transaction.

        The table is created with ``start_bankroll`` on first use. The domain's
        refusals (``BelowZero``, ``BadCredit``) store nothing.
        """

    # -- meters
    @property
    @abstractmethod
    def meters(self) -> Meters:
        """The meters service's state in this store: the domain's rules (``MeterRules``) over its tables."""

    # -- running the commands that use the store
    @abstractmethod
    def submit(self, job: Callable[[], T]) -> "Future[T]":
        """Run ``job()``, which calls this store's methods, off the caller's thread.

        The future's result is ``job()``'s, set only once everything the job
        changed is durable; if that fails, the future holds the StorageError
        and nothing the job changed is kept. An event loop hands store-bound
        commands to this, so no thread of its own waits for the disk.
        """

    # -- request labels
    @abstractmethod
    def once(
        self, user: str, label: str, run: Callable[[], LabelRecord], policy: LabelPolicy
    ) -> tuple[LabelRecord, bool]:
        """``user``'s record of ``label``, or ``run()``'s, recorded in the same transaction as ``run``'s changes.

        Returns ``(record, True)`` when ``label`` has a live record (nothing runs), else
        ``(run(), False)`` once ``run``'s changes and its record are durable together. Two
        uses of one label, from any connection or daemon on the store, are serialised: the
        second waits for the first and gets its record (docs/PROTOCOL.md 9a).
        """

    # -- life cycle
    @abstractmethod
    def backup(self, path: str) -> None:
        """Write a consistent copy of the database to ``path`` while in use."""

    @abstractmethod
    def close(self) -> None: ...
