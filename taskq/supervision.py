"""What the supervisor knows of each worker, and what it decides from that: pure bookkeeping, no processes
and no store, so every decision is a unit test.

A `WorkerLedger` applies the worker's protocol messages (taskq/protocol.py) as they are read: which tasks
are executing (started, outcome not known), which successes are deferred (returned, not committed yet).
From that it answers the two questions the pool acts on: `overdue(now)`, which task's worker must be
killed and why, and `settlement(returncode)`, how each task the dead worker was executing is settled.
The pool keeps the processes, the signals and the store calls.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field, replace

from taskq import protocol
from taskq.model import Completion, Interrupted, Interruption
from taskq.protocol import KillReason


def describe_exit(returncode: int) -> str:
    """A process's exit as subprocess reports it (-N: killed by signal N), in words."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class RunningTask:
    task_id: int
    attempt: int
    started: float  # monotonic seconds, when its Started message was read
    timeout: float | None  # the task's own
    kill_after: float | None  # seconds after `started` the supervisor kills its worker: the timeout, or a backstop
    cancel_deadline: float | None = None  # monotonic; set once the worker told the task it was cancelled


@dataclass(frozen=True)
class Overdue:
    """A task whose worker must be killed now, and why."""

    task_id: int
    reason: KillReason  # TIMEOUT or CANCEL
    timeout: float | None  # the task's own, for the log line


@dataclass
class WorkerLedger:
    """One worker as its status pipe tells it. Times are monotonic seconds, passed in by the caller."""

    name: str  # worker-N, named in the message of a task lost with its worker
    cancel_grace: float  # seconds a cancelled task (or a coroutine past its timeout) has to return
    running: dict[int, RunningTask] = field(default_factory=dict)  # started, outcome not known yet
    deferred: dict[int, Completion] = field(default_factory=dict)  # returned, success not committed yet
    # Returned, success not committed yet, its line not decoded yet (`protocol.read`; see decode_deferred),
    # with the task as it was running, for a line that turns out unreadable.
    deferred_lines: dict[int, tuple[bytes, RunningTask | None]] = field(default_factory=dict)
    ready: bool = False  # it said Ready: task modules imported, registered in the database
    killed: bool = False
    kill_reasons: dict[int, KillReason] = field(default_factory=dict)  # only the tasks a kill was meant for
    kill_note: str = ""  # why the worker was killed, for the tasks it ran beside the culprit
    # Returned, by an unreadable "done" line: the success is the worker's to record; lost with the worker.
    unreadable_results: dict[int, tuple[RunningTask, str]] = field(default_factory=dict)

    def apply(self, message: protocol.Message, now: float) -> None:
        if isinstance(message, protocol.Started):
            kill_after = message.timeout
            if kill_after is not None and message.worker_enforces_timeout:
                # The worker cancels a coroutine at its timeout and gives it the cancel grace to return;
                # the kill only catches a loop that never got control back.
                kill_after += self.cancel_grace
            self.running[message.task_id] = RunningTask(
                message.task_id, message.attempt, now, message.timeout, kill_after
            )
        elif isinstance(message, protocol.DeferredLine):
            self.deferred_lines[message.task_id] = (message.line, self.running.pop(message.task_id, None))
        elif isinstance(message, protocol.Ended):
            self.running.pop(message.task_id, None)
        elif isinstance(message, protocol.Recorded):
            for task_id in message.task_ids:
                self.deferred_lines.pop(task_id, None)
                self.deferred.pop(task_id, None)
                self.unreadable_results.pop(task_id, None)
        elif isinstance(message, protocol.Deferred):
            self.running.pop(message.completion.task_id, None)
            self.deferred[message.completion.task_id] = message.completion
        elif isinstance(message, protocol.Ready):
            self.ready = True
        elif isinstance(message, protocol.Unreadable):
            self._apply_unreadable(message)
        elif isinstance(message, protocol.CancelSeen) and message.task_id in self.running:
            self.running[message.task_id].cancel_deadline = now + self.cancel_grace

    def _apply_unreadable(self, message: protocol.Unreadable) -> None:
        """A line that could not be read: only a success ("done") matters, for its task stops executing.
        Its result cannot be recorded from here, so if the worker dies before recording it the task is
        settled as a lost worker's, with the reason."""
        if message.kind == "done" and message.task_id in self.running:
            task = self.running.pop(message.task_id)
            self.unreadable_results[task.task_id] = (task, message.reason)

    def decode_deferred(self) -> list[protocol.Unreadable]:
        """Decode the success lines kept undecoded (DeferredLine), when the worker died before recording them:
        each becomes a deferred success, or, unreadable, its task is settled as a lost worker's with the
        reason. Returns the unreadable ones, for the log."""
        unreadable = []
        for task_id, (line, task) in self.deferred_lines.items():
            message = protocol.decode(line)
            if isinstance(message, protocol.Deferred) and message.completion.task_id == task_id:
                self.deferred[task_id] = message.completion
                continue
            if not isinstance(message, protocol.Unreadable):  # a line that said "done" and was something else
                message = protocol.Unreadable("done", task_id, f"not a success of task {task_id}")
            unreadable.append(message)
            if task is not None:
                self.unreadable_results[task_id] = (task, message.reason)
        self.deferred_lines.clear()
        return unreadable

    def overdue(self, now: float) -> list[Overdue]:
        """The executing tasks past their timeout or their cancel grace. Empty once the worker was killed:
        its death settles them, and a second kill would only repeat the first."""
        if self.killed:
            return []
        found = []
        for task in self.running.values():
            if task.kill_after is not None and now - task.started > task.kill_after:
                found.append(Overdue(task.task_id, KillReason.TIMEOUT, task.timeout))
            elif task.cancel_deadline is not None and now > task.cancel_deadline:
                found.append(Overdue(task.task_id, KillReason.CANCEL, task.timeout))
        return found

    def record_kill(self, reason: KillReason, task_id: int | None = None) -> None:
        """The worker is being killed for `reason`: that of `task_id` alone, or (None) of every task it
        runs. Tasks running beside a culprit (coroutines) are not tagged: they are settled as a lost
        worker's, with a note that names the culprit."""
        for running_id in self.running if task_id is None else [task_id]:
            self.kill_reasons.setdefault(running_id, reason)
        if task_id is not None:
            self.kill_note = f"killed for the {reason.value} of task {task_id}"
        self.killed = True

    def settlement(self, returncode: int) -> list[Interrupted]:
        """How each task the worker was executing when it died is settled; `returncode` as subprocess
        reports it. Its deferred successes are in `deferred` after this; the tasks it held and never started
        are the store's to release."""
        self.decode_deferred()
        settled = [self._interruption(task, returncode) for task in self.running.values()]
        for task, reason in self.unreadable_results.values():
            lost = self._interruption(task, returncode)
            settled.append(replace(lost, message=f"{lost.message}; its result could not be read back: {reason}"))
        return settled

    def _interruption(self, task: RunningTask, returncode: int) -> Interrupted:
        reason = self.kill_reasons.get(task.task_id)
        if reason is KillReason.TIMEOUT:
            how, message = Interruption.FAIL, protocol.timeout_message(task.timeout or 0.0)
        elif reason is KillReason.CANCEL:
            how, message = Interruption.CANCEL, "cancelled (killed after ignoring the request)"
        elif reason is KillReason.SHUTDOWN:
            how, message = Interruption.RELEASE, "shutdown grace expired"
        else:
            how, message = Interruption.FAIL, f"worker lost: {self.name} {describe_exit(returncode)}"
            if self.kill_note:
                message += f" ({self.kill_note})"
        return Interrupted(task.task_id, task.attempt, how, message)
