"""The handle enqueue returns, without a store: a hand-made `Enqueued` says it has none. (Handles from a
store: tests/contract/test_handle.py; waiting on a real worker: tests/process/test_handle_worker.py.)"""

from __future__ import annotations

import pytest

import taskq
from taskq.model import Enqueued


def test_a_hand_made_enqueued_says_it_has_no_store() -> None:
    with pytest.raises(taskq.TaskqError, match="not returned by a store"):
        Enqueued(5).status()
