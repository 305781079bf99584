"""The audit log's hash chain (lineproto.domain.auditchain): building, verifying, and every tampering named."""

import dataclasses
import hashlib
import hmac
import json

from hypothesis import given
from hypothesis import strategies as st

from lineproto.domain import auditchain
from lineproto.domain.auditchain import EMPTY, GENESIS, REKEY, Head, canonical, next_entry, verify

KEY = bytes(range(32))
OTHER_KEY = bytes(32)


def chain(contents, key=KEY, kind="spin", start=EMPTY):
    """Entries for ``contents``, each linked to the one before."""
    entries, head = [], start
    for number, content in enumerate(contents):
        entry = next_entry(key, head, f"2026-12-02T00:00:{number % 60:02d}+00:00", kind, canonical(content))
        entries.append(entry)
        head = entry.head
    return entries


def head_of(entries, key=KEY):
    return (entries[-1].head if entries else EMPTY).signed(key)


def problem(entries, head, key=KEY, rekeyed_at=0):
    verdict = verify(entries, key, head, rekeyed_at)
    return verdict.problem


contents_lists = st.lists(
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8)), max_size=3),
    min_size=1,
    max_size=12,
)


def test_the_hash_and_mac_are_the_documented_recipe():
    """SHA-256 and HMAC-SHA256 of the JSON array [seq, at, kind, content, prev_hash]: checkable with hashlib alone."""
    entry = next_entry(KEY, EMPTY, "2026-12-02T00:00:00+00:00", "credit", canonical({"b": 1, "a": "é"}))
    fields = [1, "2026-12-02T00:00:00+00:00", "credit", '{"a":"é","b":1}', GENESIS]
    message = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    assert entry.content == '{"a":"é","b":1}'
    assert entry.hash == hashlib.sha256(message).hexdigest()
    assert entry.mac == hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert entry.prev_hash == GENESIS and entry.seq == 1


def test_an_empty_log_without_a_head_is_intact():
    verdict = verify([], KEY, None)
    assert verdict.problem is None and verdict.entries == 0 and verdict.last == EMPTY


@given(contents_lists)
def test_any_built_chain_verifies(contents):
    entries = chain(contents)
    verdict = verify(entries, KEY, head_of(entries))
    assert verdict.problem is None
    assert verdict.entries == len(contents)
    assert verdict.last == entries[-1].head


@given(contents_lists, st.data())
def test_any_edited_field_is_named_at_its_entry(contents, data):
    entries = chain(contents)
    index = data.draw(st.integers(0, len(entries) - 1))
    field = data.draw(st.sampled_from(["at", "kind", "content", "prev_hash", "hash", "mac"]))
    old = getattr(entries[index], field)
    new = data.draw(st.text(min_size=1, max_size=70).filter(lambda text: text != old))
    entries[index] = dataclasses.replace(entries[index], **{field: new})
    found = problem(entries, head_of(entries if field != "hash" else chain(contents)))
    assert found is not None and found.seq == index + 1


@given(contents_lists, st.data())
def test_any_deleted_entry_is_named(contents, data):
    entries = chain(contents)
    head = head_of(entries)
    index = data.draw(st.integers(0, len(entries) - 1))
    del entries[index]
    found = problem(entries, head)
    assert found is not None and found.seq == index + 1
    assert "missing" in found.reason


def test_edited_content_is_named_as_such():
    entries = chain([{"pocket": "3"}, {"pocket": "17"}, {"pocket": "0"}])
    entries[1] = dataclasses.replace(entries[1], content=canonical({"pocket": "18"}))
    assert str(problem(entries, head_of(entries))) == "entry 2: content edited (its hash does not match its fields)"


def test_edited_content_with_its_hash_recomputed_needs_the_key():
    entries = chain([{"pocket": "3"}, {"pocket": "17"}])
    forged = next_entry(OTHER_KEY, entries[0].head, entries[1].at, "spin", canonical({"pocket": "18"}))
    entries[1] = forged
    found = problem(entries, head_of(entries))
    assert found.seq == 2 and found.reason.startswith("bad HMAC")


def test_a_swap_is_named_reordered():
    entries = chain([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}])
    first, second = entries[1], entries[2]
    entries[1] = dataclasses.replace(second, seq=2)
    entries[2] = dataclasses.replace(first, seq=3)
    assert str(problem(entries, head_of(chain([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}])))) == (
        "entry 2: reordered: swapped with entry 3"
    )


def test_renumbered_after_a_delete_is_named_with_the_seq_it_was_written_as():
    entries = chain([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}])
    renumbered = [entries[0]] + [dataclasses.replace(entry, seq=entry.seq - 1) for entry in entries[2:]]
    found = problem(renumbered, Head(3, renumbered[-1].hash).signed(KEY))
    assert str(found) == "entry 2: reordered: it was written as entry 3"


def test_an_entry_spliced_from_another_log_with_the_same_key_breaks_the_link():
    ours = chain([{"n": 1}, {"n": 2}, {"n": 3}])
    theirs = chain([{"m": 1}, {"m": 2}])
    ours[1] = theirs[1]  # a valid entry 2, but of another chain
    found = problem(ours, head_of(ours))
    assert found.seq == 2 and found.reason.startswith("broken link")


def test_a_truncated_tail_is_caught_by_the_head():
    entries = chain([{"n": n} for n in range(5)])
    head = head_of(entries)
    found = problem(entries[:3], head)
    assert str(found) == "entry 4: missing: the log ends at 3 but its head is 5"


def test_an_appended_entry_after_the_head_is_caught():
    entries = chain([{"n": n} for n in range(3)])
    head = head_of(entries)
    more = chain([{"n": n} for n in range(4)])
    found = problem(more, head)
    assert str(found) == "entry 4: after the head (entry 3): inserted"


def test_a_head_rewritten_without_the_key_is_caught():
    entries = chain([{"n": n} for n in range(3)])
    forged = Head(2, entries[1].hash).signed(OTHER_KEY)
    found = problem(entries[:2], forged)
    assert found.seq == 2 and "head has a bad HMAC" in found.reason


def test_a_missing_head_with_entries_is_caught():
    entries = chain([{"n": 1}])
    assert str(problem(entries, None)) == "entry 1: the head is missing from the store"


def test_another_key_fails_at_the_first_entry():
    entries = chain([{"n": 1}, {"n": 2}])
    found = problem(entries, head_of(entries, OTHER_KEY), key=OTHER_KEY)
    assert found.seq == 1 and found.reason.startswith("bad HMAC")


def test_after_a_rekey_older_entries_are_checked_by_hash_and_the_new_key_signs_the_rest():
    old = chain([{"n": 1}, {"n": 2}], key=OTHER_KEY)
    rekey = chain([{"previous_head": 2}], key=KEY, kind=REKEY, start=old[-1].head)
    later = chain([{"n": 3}], key=KEY, start=rekey[-1].head)
    entries = old + rekey + later
    verdict = verify(entries, KEY, head_of(entries), rekeyed_at=3)
    assert verdict.problem is None and verdict.entries == 4 and verdict.rekeyed_at == 3
    edited = [dataclasses.replace(old[0], content=canonical({"n": 9}))] + entries[1:]
    assert problem(edited, head_of(entries), rekeyed_at=3).seq == 1
    # a rewritten old entry with its hash recomputed breaks the rekey-signed link after it
    rewritten = chain([{"n": 9}, {"n": 2}], key=OTHER_KEY)
    assert problem(rewritten + entries[2:], head_of(entries), rekeyed_at=3).seq == 3


def test_the_rekey_seq_must_be_a_rekey_entry():
    entries = chain([{"n": 1}, {"n": 2}], key=KEY)
    found = problem(entries, head_of(entries), rekeyed_at=2)
    assert str(found) == "entry 2: the rekey entry is not a rekey"


def test_an_unreadable_head_is_named():
    entries = chain([{"n": 1}])
    assert "unreadable" in problem(entries, "garbage").reason


def test_key_bytes_is_what_secrets_gives():
    assert auditchain.KEY_BYTES == 32
