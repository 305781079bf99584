"""Label records: ``(user, label) -> (command line, reply)``, so a labelled change runs once.

A labelled state-changing command looks its label up and records its reply in
the same transaction as its effect (docs/PROTOCOL.md, section 9a). Two shapes
of one rule: :class:`LabelBook` keeps a login's records in memory (a guest's,
or any user's without a database); the ``*_label`` functions keep them in the
``labels`` table, where every connection and every daemon on the database sees
them.

Records expire after the policy's ``ttl`` seconds; a user keeps at most
``per_user`` of them: recording one more drops that user's oldest.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from .locks import lock_key

#: How long a label is remembered by default (``--label-ttl``): a day.
DEFAULT_LABEL_TTL = 24 * 3600.0

#: Most records kept per user; one more drops the oldest.
LABELS_PER_USER = 10_000


@dataclass(frozen=True)
class LabelPolicy:
    """How long label records last (seconds) and how many one user keeps."""

    ttl: float = DEFAULT_LABEL_TTL
    per_user: int = LABELS_PER_USER


class LabelRecord(NamedTuple):
    """What a label ran: the command line, and the reply's code and text lines."""

    line: str
    code: int
    lines: tuple[str, ...]


class LabelBook:
    """One login's label records in memory, oldest first (not thread-safe: one session's)."""

    def __init__(self, policy: LabelPolicy):
        self.policy = policy
        self._records: OrderedDict[str, tuple[float, LabelRecord]] = OrderedDict()

    def find(self, label: str, now: float) -> LabelRecord | None:
        entry = self._records.get(label)
        if entry is None or entry[0] <= now - self.policy.ttl:
            return None
        return entry[1]

    def record(self, label: str, record: LabelRecord, now: float) -> None:
        self._records.pop(label, None)
        self._records[label] = (now, record)
        while self._records and next(iter(self._records.values()))[0] <= now - self.policy.ttl:
            self._records.popitem(last=False)
        while len(self._records) > self.policy.per_user:
            self._records.popitem(last=False)


def find_label(connection, user: str, label: str, now: float, ttl: float) -> LabelRecord | None:
    """The live record of ``(user, label)``, or None (never used, or expired).

    The label stays locked until the transaction ends (``locks.lock_key``): a second use
    of it, from another daemon, waits here until the first's record is committed.
    """
    lock_key(connection, f"label {user}\n{label}")
    row = connection.execute(
        'SELECT line, code, reply FROM labels WHERE "user" = ? AND label = ? AND at > ?', (user, label, now - ttl)
    ).fetchone()
    if row is None:
        return None
    return LabelRecord(row[0], row[1], tuple(row[2].split("\n")))


def record_label(connection, user: str, label: str, record: LabelRecord, now: float, policy: LabelPolicy) -> None:
    """Record ``(user, label)``; drop the user's expired records and any beyond ``policy.per_user``.

    Records are numbered per user (``seq``), so the bound drops a range of the oldest numbers
    and each step is an index lookup, however many records the user keeps.
    """
    seq = connection.execute('SELECT coalesce(max(seq), 0) + 1 FROM labels WHERE "user" = ?', (user,)).fetchone()[0]
    connection.execute(
        'INSERT INTO labels ("user", label, seq, line, code, reply, at) VALUES (?, ?, ?, ?, ?, ?, ?) '
        'ON CONFLICT ("user", label) DO UPDATE SET seq = excluded.seq, line = excluded.line, '
        "code = excluded.code, reply = excluded.reply, at = excluded.at",
        (user, label, seq, record.line, record.code, "\n".join(record.lines), now),
    )
    connection.execute('DELETE FROM labels WHERE "user" = ? AND at <= ?', (user, now - policy.ttl))
    connection.execute('DELETE FROM labels WHERE "user" = ? AND seq <= ?', (user, seq - policy.per_user))
