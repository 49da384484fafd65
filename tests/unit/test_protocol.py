"""The worker -> supervisor messages survive their trip through the status pipe unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from taskq import protocol
from taskq.model import Completion

AT = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)

MESSAGES = [
    protocol.Ready(),
    protocol.Started(7, 2, None),
    protocol.Started(7, 1, 30.0, worker_enforces_timeout=True),
    protocol.Started(2**62, 1, 1e-05),
    protocol.Started(7, 1, 1.5e16),
    protocol.Ended(7),
    protocol.Deferred(Completion(7, 1, {"ok": [1, "\u0000"]}, AT, False, None, AT)),
    protocol.Deferred(Completion(8, 3, None, AT, True, "app.next", None)),
    protocol.Recorded((7, 8)),
    protocol.CancelSeen(9),
    protocol.UnknownName("app.tasks.added_in_the_next_release"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_decodes_to_what_was_encoded(message: protocol.Message) -> None:
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line each: the reader splits on newlines
    assert protocol.decode(line.rstrip(b"\n")) == message


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_line_is_what_json_dumps_makes_of_the_message(message: protocol.Message) -> None:
    assert protocol.encode(message) == (json.dumps(protocol._fields(message), separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_the_supervisor_reads_what_decode_reads_and_keeps_a_success_undecoded(message: protocol.Message) -> None:
    line = protocol.encode(message).rstrip(b"\n")
    read = protocol.read(line)
    if isinstance(message, protocol.Deferred):
        assert read == protocol.DeferredLine(message.completion.task_id, line)
        assert protocol.decode(read.line) == message
    else:
        assert read == message


@pytest.mark.parametrize(
    "line",
    [
        b'{"e":"start","id":7,"a":1,"t":Infinity}',
        b'{"e":"start","id":7,"a":1,"t":5}',
        b'{"e":"start","id":' + b"7" * 30 + b',"a":1,"t":null}',
        b'{"e":"recorded","ids":[]}',
        b'{"e":"recorded","ids":[1,' + b"2" * 5000 + b"]}",
        b'{"e":"end","id":7} ',
        b'{"e":"start","id":7,"a":1,"t":null,"w":true,"x":1}',
    ],
)
def test_a_line_read_cannot_take_apart_is_decoded_never_raised(line: bytes) -> None:
    assert protocol.read(line) == protocol.decode(line)


def test_an_unknown_message_is_unreadable_not_a_guess() -> None:
    assert protocol.decode(b'{"e":"bogus"}') == protocol.Unreadable(
        "bogus", None, "ValueError: unknown worker message 'bogus'"
    )


def test_the_timeout_message_is_the_same_from_either_end() -> None:
    assert protocol.timeout_message(0.5) == "TimeoutError: task exceeded its timeout of 0.5 s"
