"""Concurrency caps before the claim: max_concurrency is validated at decoration and collected from the
registry, and a queue's cap reaches the workers' config (a change of it restarts them). The caps in the
claim itself, on both dialects: tests/contract/test_claim_limits.py; real pools: tests/process/
test_claim_limits_pool.py."""

from __future__ import annotations

import json
import os

import pytest

import taskq
from taskq import registry
from taskq.model import ClaimLimits, TaskqError


def test_max_concurrency_is_validated_and_collected_from_the_registry() -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(TaskqError, match="max_concurrency must be an int >= 1 or None"):
            taskq.task(name="caps.bad", max_concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(TaskqError, match="must be an int >= 1"):
        ClaimLimits(by_queue={"api": 0})

    @taskq.task(name="caps.test.capped", max_concurrency=3)
    def capped() -> None: ...

    try:
        limits = registry.claim_limits({"api": 2})
        assert limits is not None and limits.by_name["caps.test.capped"] == 3 and limits.by_queue == {"api": 2}
        assert registry.find("caps.test.capped").max_concurrency == 3  # type: ignore[union-attr]
    finally:
        registry._registry.pop("caps.test.capped")
    assert registry.claim_limits({}) is None  # the built-in tasks are uncapped: no caps, no cost


def test_queue_caps_reach_the_workers_and_a_change_restarts_them() -> None:
    """The pool builds each worker's config from settings; reload_settings restarts the workers when that
    config changes, so editing a queue's max_concurrency restarts them as editing `queues` does."""
    from types import SimpleNamespace

    from taskq.pool import Pool
    from taskq.settings import parse_settings
    from taskq.worker_config import WorkerConfig
    from taskq.worker_kernel import Worker

    def config(text: str) -> WorkerConfig:
        pool = SimpleNamespace(settings=parse_settings(text))
        return Pool.worker_config(pool, "worker-1")  # type: ignore[arg-type]

    capped = config("queues: {api: {max_concurrency: 2}, default: {}}\n")
    assert capped.queues == ["api", "default"] and capped.queue_limits == {"api": 2}
    assert config("queues: {api: {max_concurrency: 3}, default: {}}\n") != capped
    assert config("queues: [api, default]\n") != capped
    assert WorkerConfig(**json.loads(capped.to_json())) == capped  # what the worker process receives
    worker = Worker(capped, store=None)  # type: ignore[arg-type]
    os.close(worker._stop_r)
    os.close(worker._stop_w)
    assert worker.claim_limits is not None and worker.claim_limits.by_queue == {"api": 2}
