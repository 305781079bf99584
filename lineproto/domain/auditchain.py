"""The audit log's hash chain: entries, their hashes and HMACs, and the walk that verifies them.

Each entry holds a sequence number, a time, a kind, its content (canonical JSON
text) and the previous entry's hash. Its *message* is the JSON array
``[seq, at, kind, content, prev_hash]`` as UTF-8; its *hash* is the SHA-256 of the
message and its *mac* the HMAC-SHA256 of the message keyed by a secret kept
outside the database. So editing any field breaks that entry's hash, rewriting
the hash too needs the key, and since each message holds the previous hash,
every later HMAC vouches for everything before it. The *head* (last seq and
hash, with an HMAC of its own) is kept apart from the entries, so deleting the
newest entries shows too.

A ``rekey`` entry starts a new key (the old one lost): entries before it can only
be checked by their hashes and links, which the rekey entry's HMAC anchors.

Pure: no database, no files. ``lineproto.store.audit`` keeps the entries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

#: The "previous hash" of the first entry.
GENESIS = "0" * 64
#: Bytes of an audit key.
KEY_BYTES = 32
#: The kind of the entry that starts a new key.
REKEY = "rekey"


def canonical(content: Mapping[str, object]) -> str:
    """The one text of a change: JSON with sorted keys and no spaces, so equal content is equal text."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _message(seq: int, at: str, kind: str, content: str, prev_hash: str) -> bytes:
    return json.dumps([seq, at, kind, content, prev_hash], separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry's sequence number and hash (seq 0 and GENESIS: an empty log)."""

    seq: int
    hash: str

    def mac(self, key: bytes) -> str:
        return hmac.new(key, f"head:{self.seq}:{self.hash}".encode(), hashlib.sha256).hexdigest()

    def signed(self, key: bytes) -> str:
        """How the store keeps the head: ``seq hash mac``."""
        return f"{self.seq} {self.hash} {self.mac(key)}"


EMPTY = Head(0, GENESIS)


class BadHead(ValueError):
    """A stored head that is not ``seq hash mac``."""


def parse_head(text: str) -> tuple[Head, str]:
    """The head and its mac from :meth:`Head.signed`'s text."""
    parts = text.split(" ")
    if len(parts) != 3 or not parts[0].isdigit():
        raise BadHead(f"not 'seq hash mac': {text[:80]!r}")
    return Head(int(parts[0]), parts[1]), parts[2]


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit log entry as stored (``hash`` and ``mac`` as written, to check against the fields)."""

    seq: int
    at: str
    kind: str
    content: str
    prev_hash: str
    hash: str
    mac: str

    def hash_as(self, seq: int) -> str:
        """The hash these fields would have as entry ``seq``."""
        return hashlib.sha256(_message(seq, self.at, self.kind, self.content, self.prev_hash)).hexdigest()

    def mac_with(self, key: bytes) -> str:
        message = _message(self.seq, self.at, self.kind, self.content, self.prev_hash)
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    @property
    def head(self) -> Head:
        return Head(self.seq, self.hash)


def next_entry(key: bytes, previous: Head, at: str, kind: str, content: str) -> Entry:
    """The entry that follows ``previous``."""
    seq = previous.seq + 1
    message = _message(seq, at, kind, content, previous.hash)
    return Entry(
        seq,
        at,
        kind,
        content,
        previous.hash,
        hashlib.sha256(message).hexdigest(),
        hmac.new(key, message, hashlib.sha256).hexdigest(),
    )


@dataclass(frozen=True, slots=True)
class Problem:
    """The first bad entry: its seq and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a walk found: the entries read, the last one's head, and the first problem (None: intact)."""

    entries: int
    last: Head
    problem: Problem | None
    rekeyed_at: int = 0  # seq of the last rekey entry: entries before it were checked by hash only


def verify(entries: Iterable[Entry], key: bytes, head: str | None, rekeyed_at: int = 0) -> Verdict:
    """Walk ``entries`` (in stored seq order) and the stored ``head`` text; name the first bad entry.

    ``rekeyed_at``: the seq of the last ``rekey`` entry (0: none); its HMAC and
    every later one are checked with ``key``, earlier entries by hash and link.
    """
    walk = _Walk(key, rekeyed_at)
    rows = _Peekable(entries)
    for entry in rows:
        problem = walk.step(entry, rows.peek())
        if problem is not None:
            return Verdict(walk.count, walk.last, problem, rekeyed_at)
    return Verdict(walk.count, walk.last, walk.finish(head), rekeyed_at)


class _Walk:
    """The state of one verification walk: the entries seen and the last good head."""

    def __init__(self, key: bytes, rekeyed_at: int):
        self.key = key
        self.rekeyed_at = rekeyed_at
        self.count = 0
        self.last = EMPTY

    def step(self, entry: Entry, following: Entry | None) -> Problem | None:
        expected = self.last.seq + 1
        if entry.seq != expected:
            if entry.seq > expected:
                return Problem(expected, "missing (deleted)")
            return Problem(entry.seq, f"out of sequence after entry {self.last.seq}")
        if entry.hash_as(entry.seq) != entry.hash:
            return Problem(entry.seq, self._why_hash_differs(entry, following))
        if entry.seq >= self.rekeyed_at and not _same(entry.mac_with(self.key), entry.mac):
            return Problem(entry.seq, "bad HMAC: not written with this key (forged or inserted, or another key)")
        if entry.prev_hash != self.last.hash:
            return Problem(entry.seq, f"broken link: its previous hash is not entry {self.last.seq}'s (spliced)")
        if entry.seq == self.rekeyed_at and entry.kind != REKEY:
            return Problem(entry.seq, "the rekey entry is not a rekey")
        self.count += 1
        self.last = entry.head
        return None

    def _why_hash_differs(self, entry: Entry, following: Entry | None) -> str:
        """Edited, or an intact entry under another seq (reordered, renumbered)."""
        written = _written_as(entry)
        if written is None:
            return "content edited (its hash does not match its fields)"
        if following is not None and written == following.seq and _written_as(following) == entry.seq:
            return f"reordered: swapped with entry {following.seq}"
        return f"reordered: it was written as entry {written}"

    def finish(self, head: str | None) -> Problem | None:
        """The stored head against the last entry: catches a deleted tail."""
        if head is None:
            return None if self.count == 0 else Problem(self.last.seq, "the head is missing from the store")
        try:
            stored, mac = parse_head(head)
        except BadHead as exc:
            return Problem(self.last.seq, f"the stored head is unreadable: {exc}")
        if not _same(stored.mac(self.key), mac):
            return Problem(stored.seq, "the stored head has a bad HMAC (edited, or another key)")
        if stored.seq > self.last.seq:
            return Problem(self.last.seq + 1, f"missing: the log ends at {self.last.seq} but its head is {stored.seq}")
        if stored.seq < self.last.seq:
            return Problem(stored.seq + 1, f"after the head (entry {stored.seq}): inserted")
        if stored.hash != self.last.hash:
            return Problem(stored.seq, "its hash is not the head's (replaced)")
        return None


def _same(expected: str, stored: str) -> bool:
    """A constant-time comparison of a computed hex digest with stored text (which may hold anything)."""
    return hmac.compare_digest(expected.encode(), stored.encode("utf-8", "surrogatepass"))


def _written_as(entry: Entry, reach: int = 64) -> int | None:
    """The seq whose hash the entry's fields carry, searched within ``reach`` of its own; None if none (edited)."""
    for distance in range(1, reach + 1):
        for seq in (entry.seq + distance, entry.seq - distance):
            if seq > 0 and entry.hash_as(seq) == entry.hash:
                return seq
    return None


class _Peekable(Iterator[Entry]):
    """An iterator with a look at the next item (a swap names both entries)."""

    def __init__(self, items: Iterable[Entry]):
        self._items = iter(items)
        self._next: Entry | None = next(self._items, None)

    def __next__(self) -> Entry:
        item = self._next
        if item is None:
            raise StopIteration
        self._next = next(self._items, None)
        return item

    def peek(self) -> Entry | None:
        return self._next
