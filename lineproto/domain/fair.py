"""Provably fair spins: the pocket is committed before the bets and anyone can check it after.

The server draws a secret *server seed* (32 bytes from :mod:`secrets`, written as
64 lowercase hex characters) and publishes only its SHA-256 before play. Each
spin's pocket is then a pure function of that seed and a public *message*, so
once the seed is revealed a player recomputes every spin with nothing but
:mod:`hashlib` and :mod:`hmac`:

- ``digest_c = HMAC-SHA256(key = server seed hex as ASCII, msg = f"{message}:{c}" as UTF-8)``
  for c = 0, 1, 2, ...; each digest is read as eight 32-bit big-endian words, in
  order, digest after digest;
- with n pockets (37 European, 38 American) and ``limit = 2**32 - 2**32 % n``,
  the first word ``w < limit`` gives ``index = w % n`` (rejection sampling: every
  index is equally likely, no modulo bias);
- index i in 0..36 is pocket ``i``; on the American wheel index 37 is ``00``.

A private table's message is ``f"{client_seed}:{nonce}"`` (the player's chosen
text and the spin's number under this server seed); a shared table's is
``f"{table}:{round_id}"``. docs/PROTOCOL.md states the same rule word for word.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import struct
from collections.abc import Iterator

#: Bytes of a server seed (written as twice as many hex characters).
SERVER_SEED_BYTES = 32
#: 32-bit words in one HMAC-SHA256 digest.
WORDS_PER_DIGEST = 8
_WORDS = struct.Struct(">8I")
_SPAN = 2**32


def new_server_seed(rng: random.Random | None = None) -> str:
    """A fresh server seed as 64 lowercase hex characters: from :mod:`secrets`, or from ``rng`` (tests, replays)."""
    if rng is None:
        return secrets.token_hex(SERVER_SEED_BYTES)
    return rng.getrandbits(SERVER_SEED_BYTES * 8).to_bytes(SERVER_SEED_BYTES, "big").hex()


def new_client_seed() -> str:
    """The client seed a player starts with until they choose one: 16 random hex characters."""
    return secrets.token_hex(8)


def seed_hash(server_seed: str) -> str:
    """What is published before play: the SHA-256 of the seed's hex text (as ASCII), in hex."""
    return hashlib.sha256(server_seed.encode("ascii")).hexdigest()


def is_server_seed(text: str) -> bool:
    """True for 64 lowercase hex characters."""
    return len(text) == 2 * SERVER_SEED_BYTES and all(ch in "0123456789abcdef" for ch in text)


def words(server_seed: str, message: str) -> Iterator[int]:
    """The endless stream of 32-bit words the derivation reads: digest 0's eight, then digest 1's, ..."""
    key = server_seed.encode("ascii")
    counter = 0
    while True:
        digest = hmac.new(key, f"{message}:{counter}".encode(), hashlib.sha256).digest()
        yield from _WORDS.unpack(digest)
        counter += 1


def derive_index(server_seed: str, message: str, pockets: int) -> int:
    """The index in ``0 .. pockets - 1`` that the seed and message give (rejection sampling, no bias)."""
    if pockets < 2:
        raise ValueError(f"a wheel has at least 2 pockets, not {pockets}")
    limit = _SPAN - _SPAN % pockets
    key = server_seed.encode("ascii")
    counter = 0
    while True:  # the words of :func:`words`, without a generator: this runs on every spin
        word: int
        for word in _WORDS.unpack(hmac.digest(key, f"{message}:{counter}".encode(), "sha256")):
            if word < limit:
                return word % pockets
        counter += 1


def index_to_pocket(index: int) -> str:
    """Index 0..36 is that number; 37 (American wheels only) is ``00``."""
    return "00" if index == 37 else str(index)


def derive_pocket(server_seed: str, message: str, pockets: int) -> str:
    """The pocket a spin with this seed and message lands in, on a wheel of ``pockets`` (37 or 38)."""
    return index_to_pocket(derive_index(server_seed, message, pockets))


def private_message(client_seed: str, nonce: int) -> str:
    """A private table's message: the player's client seed and the spin's nonce."""
    return f"{client_seed}:{nonce}"


def shared_message(table: str, round_id: int) -> str:
    """A shared table's message: the table's name and the round's id."""
    return f"{table}:{round_id}"
