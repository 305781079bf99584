"""The provably fair derivation (lineproto.domain.fair) against its documented recipe."""

import hashlib
import hmac
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.domain import fair

SEED = "3f" * 32


def recipe(server_seed: str, message: str, n: int) -> int:
    """The derivation exactly as docs/PROTOCOL.md words it, written out with hashlib and hmac alone."""
    limit = 2**32 - 2**32 % n
    c = 0
    while True:
        digest = hmac.new(server_seed.encode("ascii"), f"{message}:{c}".encode(), hashlib.sha256).digest()
        for (w,) in struct.iter_unpack(">I", digest):
            if w < limit:
                return w % n
        c += 1


def test_seed_hash_is_sha256_of_the_hex_text():
    assert fair.seed_hash(SEED) == hashlib.sha256(SEED.encode()).hexdigest()
    assert len(fair.seed_hash(SEED)) == 64


def test_known_vectors_do_not_change():
    """Published spins must stay verifiable: these pockets were derived once and are fixed forever."""
    pockets = [fair.derive_pocket(SEED, fair.private_message("lucky", nonce), 38) for nonce in range(8)]
    assert pockets == ["34", "26", "25", "27", "32", "2", "5", "36"]
    assert fair.derive_pocket("00" * 32, "a:0", 37) == "10"


@given(
    seed=st.binary(min_size=32, max_size=32).map(bytes.hex),
    message=st.text(max_size=40),
    n=st.sampled_from([37, 38]),
)
def test_the_code_follows_the_recipe(seed, message, n):
    assert fair.derive_index(seed, message, n) == recipe(seed, message, n)
    assert 0 <= fair.derive_index(seed, message, n) < n


def test_words_past_the_limit_are_skipped():
    """With n = 2**31 + 1 about half the words are >= limit: each must be rejected, in stream order."""
    n = 2**31 + 1
    limit = 2**32 - 2**32 % n
    rejected = 0
    for nonce in range(200):
        message = f"x:{nonce}"
        stream = fair.words(SEED, message)
        first = next(w for w in stream if w < limit)
        assert fair.derive_index(SEED, message, n) == first % n
        rejected += next(fair.words(SEED, message)) >= limit
    assert 50 < rejected < 150  # the case was really exercised


def test_the_stream_goes_on_to_the_next_digest():
    stream = fair.words(SEED, "m")
    first_nine = [next(stream) for _ in range(9)]
    digest1 = hmac.new(SEED.encode(), b"m:1", hashlib.sha256).digest()
    assert first_nine[8] == struct.unpack(">I", digest1[:4])[0]


def test_index_37_is_double_zero_and_others_are_numbers():
    assert fair.index_to_pocket(37) == "00"
    assert [fair.index_to_pocket(i) for i in (0, 1, 36)] == ["0", "1", "36"]


def test_seeds_from_secrets_and_from_a_seeded_rng():
    seed = fair.new_server_seed()
    assert fair.is_server_seed(seed) and seed != fair.new_server_seed()
    assert fair.new_server_seed(random.Random(7)) == fair.new_server_seed(random.Random(7))
    assert fair.is_server_seed(fair.new_server_seed(random.Random(7)))
    assert not fair.is_server_seed(SEED.upper()) and not fair.is_server_seed(SEED[:-1])
    assert len(fair.new_client_seed()) == 16


def test_messages():
    assert fair.private_message("my seed", 4) == "my seed:4"
    assert fair.shared_message("main", 17) == "main:17"


def test_a_wheel_needs_two_pockets():
    with pytest.raises(ValueError):
        fair.derive_index(SEED, "m", 1)
