"""Issue 19, point 8: a worker's log says why a task failed: the exception line on its task_failed /
task_retry line (clipped), and the traceback at DEBUG (`log_level: DEBUG`). In the text format, and as the
`error` and `traceback` fields of the events in the JSON format."""

from __future__ import annotations

import pytest
from poolkit import PoolProcess, wait_for

from taskq.model import Status


def line_of(log: str, start: str) -> str:
    (line,) = [line for line in log.splitlines() if start in line]
    return line


def run_failures(tmp_path, db, pools, log_level: str, log_format: str) -> tuple[PoolProcess, int, int]:
    url, store = db
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"log_level: {log_level}\nlog_format: {log_format}\n")
    flaky = store.enqueue("t.flaky", [1]).id  # ConnectionError on its first attempt, retried
    doomed = store.enqueue("crash.raises", ["the disk is full\nsecond line " + "x" * 500], max_retries=0).id
    pool = PoolProcess(tmp_path, url, "--import", "crash_tasks", "--workers", "1", settings=settings)
    pool.log_format = log_format  # from the file: the pool reads it as it was told
    pools.append(pool)
    wait_for(lambda: store.require(flaky).status is Status.COMPLETED, 20, what="the flaky task's second attempt")
    wait_for(lambda: store.require(doomed).status is Status.FAILED, 20, what="the failing task")
    return pool, flaky, doomed


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_the_failure_line_carries_the_exception_line_and_debug_the_traceback(tmp_path, db, pools, log_level) -> None:
    pool, flaky, doomed = run_failures(tmp_path, db, pools, log_level, "text")
    wait_for(lambda: f"task_failed task_id={doomed} " in pool.log(), 10, what="the task_failed line")
    log = pool.log()

    retry = line_of(log, f"task_retry task_id={flaky} ")
    assert retry.endswith(": ConnectionError: attempt 1: service unreachable"), retry
    failed = line_of(log, f"task_failed task_id={doomed} ")
    error = failed.split(" seconds=", 1)[1].split(": ", 1)[1]
    assert error.startswith("ValueError: the disk is full\\nsecond line xxx")  # one line: newlines escaped
    assert len(error) == 200 and error.endswith("...")  # clipped
    if log_level == "DEBUG":
        assert f"task_traceback task_id={doomed} attempt=1:" in log
        assert "Traceback (most recent call last)" in log and "raise ValueError(message)" in log
    else:
        assert "task_traceback" not in log and "Traceback" not in log


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_the_failure_events_carry_the_error_and_at_debug_the_traceback(tmp_path, db, pools, log_level) -> None:
    pool, flaky, doomed = run_failures(tmp_path, db, pools, log_level, "json")
    (failed,) = wait_for(lambda: pool.events("task_failed", task_id=doomed), 10, what="the task_failed event")

    (retry,) = pool.events("task_retry", task_id=flaky, attempt=1, name="t.flaky")
    assert retry["error"] == "ConnectionError: attempt 1: service unreachable" and retry["level"] == "INFO"
    assert pool.events("task_completed", task_id=flaky, attempt=2)
    assert failed["error"].startswith("ValueError: the disk is full\\nsecond line xxx")
    assert len(failed["error"]) == 200 and failed["process"]["name"] == "worker-1"
    assert isinstance(failed["seconds"], float) and failed["attempt"] == 1
    tracebacks = pool.events("task_traceback", task_id=doomed, attempt=1)
    if log_level == "DEBUG":
        (traceback,) = tracebacks
        assert traceback["traceback"].startswith("Traceback (most recent call last)")
        assert "raise ValueError(message)" in traceback["traceback"]
    else:
        assert tracebacks == []
