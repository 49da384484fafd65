"""A worker's per-task log lines, written the cheap way, read exactly as logging's own machinery wrote them:
the record names the caller, the text format's time is logging's, and a flush hands the stream every
buffered line in one write."""

from __future__ import annotations

import io
import logging
import logging.handlers
import sys

from taskq.events import log_event
from taskq.logformat import TextFormatter, formatter
from taskq.worker_kernel import LineBatch

log = logging.getLogger("taskq.test.lines")


def test_the_record_names_the_caller_and_carries_the_exception_being_handled(caplog) -> None:
    caplog.set_level(logging.INFO, "taskq")
    try:
        raise ValueError("boom")
    except ValueError:
        line = sys._getframe().f_lineno + 1
        log_event(log, logging.ERROR, "heartbeat_error", exc_info=True, worker_id="w", duty="Renew")
    (record,) = caplog.records
    assert (record.pathname, record.lineno) == (__file__, line)
    assert record.funcName == "test_the_record_names_the_caller_and_carries_the_exception_being_handled"
    assert record.exc_info is not None and record.exc_info[0] is ValueError


def test_the_text_time_is_loggings_own_within_a_second_and_across_seconds() -> None:
    ours, theirs = TextFormatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    for created in (1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25, 86_399.9994):
        record = logging.makeLogRecord({"msg": "m", "created": created, "msecs": (created % 1) * 1000})
        assert ours.format(record) == theirs.format(record)
    assert isinstance(formatter("text", "worker-1"), TextFormatter)


class CountingStream(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def lines_written(handler_class: type[logging.handlers.MemoryHandler]) -> tuple[str, int]:
    stream = CountingStream()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    buffered = handler_class(256, flushLevel=logging.WARNING, target=target)
    for n in range(5):
        buffered.handle(logging.makeLogRecord({"msg": f"task {n}", "levelno": logging.INFO, "levelname": "INFO"}))
    assert stream.getvalue() == ""  # held until a flush
    buffered.handle(logging.makeLogRecord({"msg": "lost", "levelno": logging.WARNING, "levelname": "WARNING"}))
    return stream.getvalue(), stream.writes


def test_a_flush_writes_the_lines_a_memory_handler_would_in_one_write() -> None:
    text, writes = lines_written(LineBatch)
    assert (text, writes) == (lines_written(logging.handlers.MemoryHandler)[0], 1)
    assert text.splitlines() == [f"INFO task {n}" for n in range(5)] + ["WARNING lost"]
