"""`--log-format json` (issue 23 point 2): the supervisor and every worker write one JSON object a line,
with the event, its fields, the process that wrote it and the exception of a crash."""

from __future__ import annotations

import json
import signal

import pytest
from poolkit import PoolProcess, wait_for

from taskq.model import Status


def test_every_line_of_a_json_pool_is_an_event_of_the_supervisor_or_a_worker(tmp_path, db, pools) -> None:
    url, store = db
    ids = [e.id for e in store.enqueue_many([{"name": "t.record", "args": [n]} for n in range(20)])]
    pool = PoolProcess(tmp_path, url, "--workers", "2", log_format="json")
    pools.append(pool)
    wait_for(lambda: all(store.require(i).status is Status.COMPLETED for i in ids), 30, what="20 completions")
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    lines = [json.loads(line) for line in pool.log().splitlines()]  # not one line of text
    assert lines and all(line["event"] for line in lines)
    by_process = {(line["process"]["name"], line["event"]) for line in lines}
    assert {("supervisor", "pool_started"), ("supervisor", "shutdown_complete")} <= by_process
    assert {("worker-1", "worker_started"), ("worker-2", "worker_started")} <= by_process
    assert sorted(line["task_id"] for line in pool.events("task_completed")) == sorted(ids)
    assert all(line["time"].endswith("Z") and line["level"] == "INFO" for line in lines)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_worker_that_crashes_at_start_logs_its_exception_in_the_pools_format(tmp_path, db, pools, log_format) -> None:
    url, _store = db
    pool = PoolProcess(tmp_path, url, "--workers", "1", "--import", "worker_only_broken_tasks", log_format=log_format)
    pools.append(pool)
    wait_for(lambda: "worker_crash_loop" in pool.log(), 30, what="the worker's crash loop")
    if log_format == "text":
        assert "worker_crashed\nTraceback (most recent call last)" in pool.log()
        return
    crashed = pool.events("worker_crashed", level="ERROR")
    assert crashed and crashed[0]["process"]["name"] == "worker-1"
    assert crashed[0]["exception"].endswith("RuntimeError: this module does not import in a worker")
    assert pool.events("worker_exited", level="ERROR", name="worker-1")
