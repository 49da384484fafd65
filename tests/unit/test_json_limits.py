"""The one depth limit of stored JSON (taskq/json_limits.py): the writer's check and the reader's are the same
function on the same text, so what enqueue accepts every reader decodes, and nothing read ever raises."""

from __future__ import annotations

import copy
import json
import pickle
import random
import sys

import pytest
from poison_rows import nested, nested_text

from taskq.json_limits import (
    MAX_JSON_DEPTH,
    JsonRefused,
    Undecodable,
    check_text,
    decode,
    depth_over,
    encode,
    read_column,
)


def test_the_limit_sits_far_below_the_recursion_limit_with_room_for_envelopes() -> None:
    assert sys.getrecursionlimit() // 4 > MAX_JSON_DEPTH + 10


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (nested_text(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH + 1),
        ("[" + ",".join(["[]"] * 500) + "]", 0),  # many brackets, but only two levels
        (json.dumps(["[" * 500, "{" * 500]), 0),  # brackets inside strings do not nest
        (json.dumps(['\\"[' * 300]), 0),  # nor after escaped quotes
        ('{"a": ' + nested_text(150) + "}", 151),
    ],
)
def test_depth_counts_nesting_not_brackets(text: str, depth: int) -> None:
    assert depth_over(text) == depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 960, 10_000])
def test_what_encode_accepts_decode_reads_and_nothing_else(depth: int) -> None:
    value = nested(depth)
    if depth <= MAX_JSON_DEPTH:
        assert decode(encode(value)) == value
        return
    with pytest.raises(JsonRefused, match=f"taskq keeps at most {MAX_JSON_DEPTH}"):
        encode(value)  # 10,000 deep: a RecursionError in json.dumps, turned into the refusal
    with pytest.raises(JsonRefused, match=f"is nested {depth} levels deep"):
        decode(nested_text(depth))  # checked on the text: the recursive decoder never sees it


def test_a_deep_text_is_refused_without_touching_the_stack() -> None:
    with pytest.raises(JsonRefused, match="is nested 100000 levels deep"):
        decode(nested_text(100_000))


def test_the_key_a_deep_value_sits_under_is_named() -> None:
    body = json.dumps({"name": "x", "args": ["{[" * 5], "kwargs": {"k": None}})[:-1] + ', "deep": '
    with pytest.raises(JsonRefused) as refused:
        check_text(body + nested_text(MAX_JSON_DEPTH) + "}")
    assert (refused.value.key, refused.value.depth) == ("deep", MAX_JSON_DEPTH + 1)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (nested_text(2000), f"<undecodable: nested 2000 levels deep (taskq keeps at most {MAX_JSON_DEPTH})>"),
        ("[1, 2", "<undecodable: not valid JSON: Expecting ',' delimiter: line 1 column 6 (char 5)>"),
        (b"\xff[]", "<undecodable: not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte>"),
    ],
)
def test_a_column_that_cannot_be_read_is_a_placeholder_not_an_exception(stored: str | bytes, shown: str) -> None:
    value = read_column(stored)
    assert isinstance(value, Undecodable) and value == shown
    assert json.loads(json.dumps(value)) == shown  # shown by the API and the CLI as any string is


@pytest.mark.parametrize(("stored", "value"), [(b'{"a": [1]}', {"a": [1]}), ('"x"', "x"), (5, 5), (1.5, 1.5)])
def test_a_column_that_can_be_read_is_its_value(stored: str | bytes | float, value: object) -> None:
    # psycopg hands bytes; SQLite's JSON columns have numeric affinity, so it hands numbers as numbers
    assert read_column(stored) == value


def test_not_json_is_refused_naming_why() -> None:
    with pytest.raises(JsonRefused, match="must be JSON-serialisable: Out of range float values"):
        encode([float("nan")])
    with pytest.raises(JsonRefused, match="must be JSON-serialisable: Object of type set"):
        encode({1})


def reference_depth(value: object) -> int:
    if isinstance(value, (list, dict)):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((reference_depth(child) for child in children), default=0)
    return 0


def test_depth_agrees_with_walking_the_value_on_random_json() -> None:
    rng = random.Random(19)
    # Strings full of brackets, quotes and backslashes: the scan must not count what is inside them.
    leaves = [1, 'x"[{', "\\", 'a\\\\"]', None, True, 1.5e10, "é[", "", "}}]]", "\ud800"]

    def make(depth: int) -> object:
        if depth == 0 or rng.random() < 0.1:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return [make(depth - 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["k", "[", '\\"{']) + str(n): make(depth - 1) for n in range(rng.randint(0, 3))}

    for _ in range(300):
        value = make(rng.randint(0, 14))
        expected = reference_depth(value)
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
            for limit in (0, 3, 8):
                assert depth_over(text, limit) == (expected if expected > limit else 0), (text, limit)


def test_a_placeholder_survives_pickle_and_deepcopy() -> None:
    placeholder = read_column(nested_text(200))
    for copied in (pickle.loads(pickle.dumps(placeholder)), copy.deepcopy(placeholder)):
        assert isinstance(copied, Undecodable) and copied == placeholder and copied.reason == placeholder.reason
