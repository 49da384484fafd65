"""The one limit on the JSON taskq keeps (args, kwargs, results) and on the pipe messages that carry
results: how deeply it may nest. Checked on the JSON text, by the same function, where it is written
(enqueue, a task's result) and where it is read back (every row, every pipe line), so whatever the door
lets in, every reader can decode (DESIGN.md rule 15).

Why a limit at all: Python's json module recurses once per level, against a recursion limit (1,000
frames) that the caller's own stack shares. A value encoded in a shallow stack (an application calling
enqueue) could then not be decoded in a deeper one (a worker in its claim loop, a web handler), and the
RecursionError killed whatever read it. Why MAX_JSON_DEPTH = 100: far below that recursion limit
whatever stack reads it, with room for the envelopes that wrap a value (the pipe message, the API's
list) under the limits of the other readers it meets: serde_json's default of 128 levels, orjson's 255.
Real arguments and results nest a handful of levels; 100 is a data structure gone wrong (a linked list
or a tree encoded as nesting), which would better be stored flat. The reader applies the limit too, not
only its own stack: a row deeper than 100 (written by an older taskq, or by other means) is unreadable on
every machine alike, instead of on some stacks and not others.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_JSON_DEPTH = 100  # levels of arrays and objects, the outermost counted: [[1]] is 2 levels deep

# Outside strings, what JSON may hold besides brackets (literals, numbers, separators, whitespace) is deleted
# and both kinds of bracket become parentheses, in one C-speed bytes.translate; only depth matters here.
_SYNTAX = b"0123456789-+.eEaflnrstu \t\n\r,:"
_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_PAREN = re.compile(rb"[^()]+")
_STEP = {ord("("): 1, ord(")"): -1}
# Tokens for naming the top-level key a too-deep value sits under (the slow path only): a string, maybe
# followed by the colon that makes it a key, or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"\s*:?|[\[\]{}]', re.DOTALL)


class JsonRefused(ValueError):
    """A value or text taskq will not keep or read: not JSON, or nested deeper than the limit. `reason`
    completes a sentence whose subject is the field ("args is nested 150 levels deep ..."); `key` is the
    top-level key of the object the nesting passed the limit under, when the text was an object."""

    def __init__(self, reason: str, key: str | None = None, depth: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key
        self.depth = depth  # how deep the text nests, when that is the reason


class Undecodable(str):
    """What a JSON column holds, in a Task read back, when its text cannot be decoded: a placeholder that
    says why. A str, so lists, the API and the CLI show it as they show any value; a claim never hands a
    task whose arguments are Undecodable to a worker (the store fails it)."""

    __slots__ = ("reason",)
    reason: str

    def __new__(cls, reason: str) -> Undecodable:
        placeholder = super().__new__(cls, f"<undecodable: {reason.removeprefix('is ')}>")
        placeholder.reason = reason  # set once, here
        return placeholder

    def __reduce__(self) -> tuple[type[Undecodable], tuple[str]]:  # pickle and deepcopy rebuild it from its reason
        return (Undecodable, (self.reason,))


class EncodedJson(str):
    """JSON text `encode` has already checked, for a JSON column: the column type binds it as it is
    instead of encoding it again (a plain str is a JSON string value, and is encoded)."""

    __slots__ = ()


def bind_json(value: Any) -> str:
    """The text a JSON column stores for `value` (json.dumps; EncodedJson as it is)."""
    return value if type(value) is EncodedJson else json.dumps(value)


def depth_over(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply JSON `text` nests arrays and objects when that is more than `limit`, else 0; brackets
    inside strings do not count. Cheap for the common case: a text with no more opening brackets than the
    limit cannot nest deeper (two counts); any other is reduced to its brackets, and each pass of
    `replace("()", "")` takes away exactly one level (the innermost pairs), so a text `d` levels deep is
    known to be within the limit after `d` passes, all at C speed. Only a text still left after `limit`
    passes is counted bracket by bracket, for the exact depth the error gives."""
    if text.count("[") + text.count("{") <= limit:
        return 0
    parens = _outside_strings(text).encode("utf-8", "surrogatepass").translate(_AS_PARENS, _SYNTAX)
    if parens.translate(None, b"()"):  # not JSON: keep its brackets all the same (the decoder says why)
        parens = _NOT_PAREN.sub(b"", parens)
    left = parens
    for _ in range(limit):
        if not left:
            return 0
        left = left.replace(b"()", b"")
    if not left:
        return 0
    found = max(accumulate(map(_STEP.__getitem__, parens)), default=0)
    return found if found > limit else 0


def _outside_strings(text: str) -> str:
    """`text` without its JSON strings. Escaped backslashes, then escaped quotes, are dropped first (no
    JSON has a backslash outside a string), so every quote left opens or closes a string."""
    if '"' not in text:
        return text
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    return "".join(text.split('"')[::2])


def _deep_key(text: str, limit: int) -> str | None:
    """The top-level key of the object `text` under which nesting first passes `limit`, if it is an object."""
    level, key = 0, None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            level += 1
            if level > limit:
                return key
        elif token in "]}":
            level -= 1
        elif level == 1 and token.endswith(":"):
            key = json.loads(token.rstrip()[:-1].rstrip())
    return None


def check_text(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonRefused when `text` nests deeper than `limit`."""
    found = depth_over(text, limit)
    if found:
        raise JsonRefused(f"is nested {found} levels deep (taskq keeps at most {limit})", _deep_key(text, limit), found)


def encode(value: Any, limit: int = MAX_JSON_DEPTH) -> str:
    """The JSON text taskq stores for `value`; JsonRefused when it is not JSON (NaN and infinities
    included: PostgreSQL and most readers refuse them) or nests deeper than `limit`."""
    try:
        text = json.dumps(value, allow_nan=False)
    except RecursionError:  # nested deeper than this stack can encode, so far deeper than the limit
        raise JsonRefused(f"is nested too deep to encode (taskq keeps at most {limit} levels)") from None
    except (TypeError, ValueError) as error:
        raise JsonRefused(f"must be JSON-serialisable: {error}") from None
    check_text(text, limit)
    return text


def decode(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """The value of JSON `text`; JsonRefused when it is not JSON or nests deeper than `limit` (checked on
    the text before decoding, so a deep text never reaches the recursive decoder)."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonRefused(f"is not UTF-8: {error}") from None
    check_text(text, limit)
    try:
        return json.loads(text)
    except RecursionError:  # within the limit, yet this stack is too deep: still the reader's failure
        raise JsonRefused("is too deep to decode on this stack") from None
    except ValueError as error:
        raise JsonRefused(f"is not valid JSON: {error}") from None


def read_column(text: str | bytes | float) -> Any:
    """The database engine's JSON decoder (every JSON column, both dialects): never raises, so a row that
    cannot be decoded is still read, with an Undecodable placeholder where its value would be."""
    if isinstance(text, (int, float)):  # SQLite's JSON columns have numeric affinity: "5" is stored as 5
        return text
    try:
        return decode(text)
    except JsonRefused as refused:
        return Undecodable(refused.reason)
