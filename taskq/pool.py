"""The supervisor: keeps live worker processes at the wanted count, enforces timeouts and cancellation
grace by killing workers, recovers the task of a worker that died, reloads settings, shuts down gracefully.

Signal handlers and the settings watcher only record what was asked; the main loop acts on it
(the arbiter pattern of gunicorn), so no logging or I/O ever happens inside a signal handler. The loop
(`run`) waits for status lines and signals; each round's decisions are `tick(now)`, with the time passed in,
so tests drive them as they drive the heartbeat's duties.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy.exc import DBAPIError

from taskq import forkserver, protocol, registry, systemd, urls
from taskq.api import open_store
from taskq.clock import utc_now
from taskq.events import log_event
from taskq.forkserver import ForkedProcess
from taskq.identity import WorkerIdentity, supervisor_environment
from taskq.lifecycle import PASS_ON_TRIES
from taskq.logformat import use_format
from taskq.maintenance import DeadWorkerRescuer, LeaseRescuer, MaintenanceThread, Retention, StatsRollup
from taskq.model import Interruption
from taskq.orphans import OrphanKiller
from taskq.protocol import KillReason
from taskq.respawn import QUICK_DEATH_SECONDS, RespawnBackoff
from taskq.scheduler import Scheduler, parse_schedules
from taskq.settings import LOG_FORMAT, Apply, Settings, SettingsError, changed_settings, reread_settings
from taskq.settings_watch import SettingsWatcher, file_stamp
from taskq.supervision import WorkerLedger, describe_exit
from taskq.worker_config import WorkerConfig

LOOP_TICK_SECONDS = 0.25  # how often timeouts and grace periods are checked when nothing else happens
LEASE_RESCUE_SECONDS = 2.0
NUDGE_COALESCE_SECONDS = 0.005  # at most ~200 wake-ups of idle workers per second
STATUS_COALESCE_SECONDS = 0.005  # workers' status lines are read at most ~200 times a second
RETENTION_SECONDS = 60.0
ROLLUP_SECONDS = 10.0  # finished rows folded into the per-minute rollups this often
SCHEDULER_SECONDS = 1.0  # how late a schedule's next row may be created after its previous one finished

log = logging.getLogger("taskq.pool")


@dataclass
class WorkerHandle:
    number: int
    config: WorkerConfig
    process: subprocess.Popen[bytes] | ForkedProcess
    status_fd: int
    wake_fd: int
    started: float
    worker_id: str  # the id the worker writes into the rows it claims (same host, pid, start time)
    ledger: WorkerLedger  # what it is executing and deferring, as its status lines tell
    retiring: bool = False
    stop_deadline: float | None = None  # monotonic; once retiring, its tasks are released after this
    partial: bytes = b""  # the start of a status line whose end is not read yet


def has_exited(pid: int) -> bool:
    """Whether a child has exited, without reaping it (its pid stays taken until we do)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def waitstatus_code(pid: int) -> int:
    """The exit code of an exited, not yet reaped child, as subprocess reports it (-N: killed by signal N)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return 0
    if info is None:
        return 0
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


class Pool:
    def __init__(self, settings: Settings, *, fork_server: bool = True) -> None:
        """`settings` as `load_settings` made them: the command line's flags in them stay in force on reloads.
        Without `fork_server`, each worker starts as `python -m taskq.worker`, as where no server can run."""
        # First (if `taskq worker` has not started it already), so that its imports run while this
        # process finishes its own start-up.
        self.forkserver = forkserver.pool_client(supervisor_environment()) if fork_server else None
        self.settings = settings
        self.store = open_store(settings.database, upgrade=False)  # `taskq worker` upgraded it already
        self.handles: list[WorkerHandle] = []
        self._handles_lock = threading.Lock()
        self._signals: list[int] = []
        self._signal_r, self._signal_w = os.pipe()
        self.shutting_down = False
        self._hard_stop = False
        self.respawn = RespawnBackoff()  # per slot: one crash-looping slot never holds back the others
        self.lacking: set[str] = set()  # task names some worker claimed and did not know (logged once each)
        self._stop_wake = threading.Event()
        self.dead_worker_rescuer = DeadWorkerRescuer(self.store)
        self.retention = Retention(self.store, settings.retention_seconds)
        self.scheduler = Scheduler(self.store)  # its schedules are read by start_duties()
        # Started by start_duties() once the first workers are: none of them must run before a worker may
        # claim, and their imports and threads would only delay the first task.
        self.maintenance: MaintenanceThread | None = None
        self.watcher: SettingsWatcher | None = None
        # The settings file as it was read: an edit made before the watcher is up is reloaded once it is.
        self._settings_stamp = file_stamp(settings.path) if settings.path is not None else None
        self.announced_ready = False  # READY=1 is sent once, when the first workers are up
        self.watchdog_every: float | None = None  # systemd's WatchdogSec, halved (run() reads it)
        self.next_watchdog = 0.0  # monotonic

    # -- configuration ------------------------------------------------------------------------------

    @property
    def wanted_workers(self) -> int:
        return self.settings.workers

    def worker_config(self, name: str) -> WorkerConfig:
        settings = self.settings
        return WorkerConfig(
            name=name,
            database=settings.database,
            queues=list(settings.queues),
            queue_limits=dict(settings.queue_limits),
            imports=list(settings.imports),
            lease_seconds=settings.lease_seconds,
            prefetch=settings.prefetch,
            concurrency=settings.concurrency,
            max_tasks=settings.max_tasks,
            max_memory_mb=settings.max_memory_mb,
            log_level=settings.log_level,
            log_format=settings.log_format,
            shutdown_grace=settings.shutdown_grace,
            cancel_grace=settings.cancel_grace,
        )

    def reload_settings(self) -> None:
        """Apply an edit: live settings at once, a graceful restart of the workers for `RESTART_WORKERS`
        ones; `RESTART_POOL` ones keep their old value (see the declarations in taskq/settings.py)."""
        try:
            new, dropped = reread_settings(self.settings)
            registry.import_task_modules(new.imports)
        except Exception as error:  # SettingsError, or a task module that no longer imports
            log_event(log, logging.ERROR, "settings_invalid", error=str(error), detail="keeping the last good settings")
            return
        for setting in dropped:
            log_event(
                log,
                logging.INFO,
                "setting_flag_replaced",
                key=setting.key,
                value=setting.show(getattr(new, setting.fields[0])),
                flag=setting.cli,
                replaced=setting.show(getattr(self.settings, setting.fields[0])),
            )
        changed = changed_settings(self.settings, new)
        for setting in changed:
            if setting.apply is Apply.RESTART_POOL:
                kept = {attr: getattr(self.settings, attr) for attr in setting.fields}
                shown = ", ".join(f"{attr}={setting.show(value)}" for attr, value in kept.items())
                log_event(
                    log,
                    logging.WARNING,
                    "setting_needs_pool_restart",
                    key=setting.key,
                    detail=f"takes a restart of the pool; keeping {shown}",
                )
                new = replace(new, **kept)
        self.settings = new
        logging.getLogger("taskq").setLevel(new.log_level)
        if LOG_FORMAT in changed:
            use_format(new.log_format, "supervisor")
        self.retention.retention_seconds = new.retention_seconds
        self.update_schedules(new)
        restarting = [setting.key for setting in changed if setting.apply is Apply.RESTART_WORKERS]
        if restarting:
            log_event(log, logging.INFO, "workers_restarting", settings=restarting)
            if self.forkserver is not None:
                self.forkserver.restart()  # the new workers run the code now on disk
            for handle in self.live_handles():
                self.retire(handle)
        log_event(log, logging.INFO, "settings_reloaded", workers=self.wanted_workers)
        self._log_if_paused()

    def _log_if_paused(self) -> None:
        if self.wanted_workers == 0:
            log_event(
                log,
                logging.INFO,
                "pool_paused",
                workers=0,
                detail="no task is claimed until it is raised (running tasks finish)",
            )

    def update_schedules(self, settings: Settings) -> None:
        """Invalid entries are logged and left out; the valid ones keep running."""
        schedules, errors = parse_schedules(settings.schedule, locate=settings.where)
        for error in errors:
            log_event(log, logging.ERROR, "schedule_invalid", error=str(error))
        self.scheduler.update(schedules)

    # -- workers --------------------------------------------------------------------------------------

    def live_handles(self) -> list[WorkerHandle]:
        with self._handles_lock:
            return [handle for handle in self.handles if not handle.retiring]

    def spawn(self, number: int) -> None:
        wake_r, wake_w = os.pipe()
        status_r, status_w = os.pipe()
        config = replace(self.worker_config(f"worker-{number}"), wake_fd=wake_r, status_fd=status_w)
        process: subprocess.Popen[bytes] | ForkedProcess
        if self.forkserver is not None:
            process = self.forkserver.spawn(config, (wake_r, status_w))
        else:
            process = subprocess.Popen(
                [sys.executable, "-m", "taskq.worker", config.to_json()],
                pass_fds=(wake_r, status_w),
                stdin=subprocess.DEVNULL,
                env=supervisor_environment(),  # a later pool tells from it whether this worker is an orphan
                # Its own process group: what its tasks start goes with it when it exits (see reap()).
                start_new_session=True,
            )
        os.close(wake_r)
        os.close(status_w)
        os.set_blocking(wake_w, False)
        os.set_blocking(status_r, False)
        worker_id = str(WorkerIdentity.of_process(process.pid, config.name))
        ledger = WorkerLedger(config.name, cancel_grace=self.settings.cancel_grace)
        handle = WorkerHandle(number, config, process, status_r, wake_w, time.monotonic(), worker_id, ledger)
        with self._handles_lock:
            self.handles.append(handle)
        log_event(log, logging.INFO, "worker_spawned", name=config.name, pid=process.pid)

    def retire(self, handle: WorkerHandle, now: float | None = None) -> None:
        """Ask a worker to finish its current task and exit, within `shutdown_grace` (enforce_stop_deadlines)."""
        handle.retiring = True
        if handle.stop_deadline is None:
            handle.stop_deadline = (time.monotonic() if now is None else now) + self.settings.shutdown_grace
        with contextlib.suppress(ProcessLookupError):
            handle.process.send_signal(signal.SIGTERM)

    def kill(self, handle: WorkerHandle, reason: KillReason, task_id: int | None = None) -> None:
        """SIGKILL the worker for `reason`: that of `task_id`, or (None) of every task it runs. The tasks
        running beside a culprit (coroutines) are cut short with it, and settled as a lost worker's."""
        handle.ledger.record_kill(reason, task_id)
        handle.retiring = True
        with contextlib.suppress(ProcessLookupError):
            handle.process.kill()

    def converge(self, now: float) -> None:
        """Make the number of live (not retiring) workers equal the wanted number."""
        if self.shutting_down:
            return
        live = sorted(self.live_handles(), key=lambda handle: handle.number)
        wanted = self.wanted_workers
        for handle in live[wanted:]:
            log_event(
                log, logging.INFO, "worker_retiring", name=handle.config.name, wanted=wanted, detail="scaling down"
            )
            self.retire(handle, now)
        if len(live) < wanted:
            used = {handle.number for handle in live}
            free = [number for number in range(1, wanted + len(live) + 1) if number not in used]
            # A slot still backing off stays empty: starting another number in its place would undo it.
            for number in free[: wanted - len(live)]:
                if self.respawn.may_respawn(number, now):
                    self.spawn(number)

    def workers_up(self) -> bool:
        """Every wanted worker has started and said so: what systemd's READY=1 should mean."""
        live = self.live_handles()
        return len(live) >= self.wanted_workers and all(handle.ledger.ready for handle in live)

    def nudge_all(self) -> None:
        with self._handles_lock:
            handles = list(self.handles)
        for handle in handles:
            try:
                os.write(handle.wake_fd, b"!")
            except OSError as error:  # full pipe (the worker is busy; it will look anyway) or gone
                if error.errno not in (errno.EAGAIN, errno.EPIPE, errno.EBADF):
                    raise

    # -- events from workers -------------------------------------------------------------------------

    def read_status(self, handle: WorkerHandle) -> bool:
        """Apply the worker's status lines; False when there was nothing to read."""
        try:
            chunk = os.read(handle.status_fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            return False
        lines = (handle.partial + chunk).split(b"\n")
        handle.partial = lines.pop()
        now = time.monotonic()
        apply = handle.ledger.apply
        for line in lines:
            if line:
                # A success's line is kept undecoded: its result matters only if the worker dies first.
                message = protocol.read(line)
                apply(message, now)
                if isinstance(message, protocol.Unreadable):
                    self.report_unreadable(handle, message)
                elif isinstance(message, protocol.UnknownName):
                    self.report_unknown(message.name)
        return True

    def report_unreadable(self, handle: WorkerHandle, message: protocol.Unreadable) -> None:
        log_event(
            log,
            logging.ERROR,
            "worker_message_unreadable",
            worker=handle.config.name,
            kind=message.kind,
            task_id=message.task_id,
            error=message.reason,
        )

    def report_unknown(self, name: str) -> None:
        """Once per name for the whole pool, however many workers and rows meet it."""
        if name in self.lacking:
            return
        self.lacking.add(name)
        log_event(
            log,
            logging.WARNING,
            "task_unknown",
            name=name,
            imports=list(self.settings.imports),
            tries=PASS_ON_TRIES,
            detail="no worker of this pool knows it; its tasks go back to pending for a worker that does, and fail"
            f" after {PASS_ON_TRIES} tries in a row",
        )

    def enforce_deadlines(self, now: float) -> None:
        """A worker running a task past its timeout, or past its cancel grace, is killed for that task."""
        for handle in list(self.handles):
            for overdue in handle.ledger.overdue(now):
                if overdue.reason is KillReason.TIMEOUT:
                    log_event(
                        log,
                        logging.WARNING,
                        "task_timeout",
                        task_id=overdue.task_id,
                        timeout=overdue.timeout,
                        worker=handle.config.name,
                        detail="killing the worker",
                    )
                else:
                    log_event(
                        log,
                        logging.WARNING,
                        "task_cancel_forced",
                        task_id=overdue.task_id,
                        worker=handle.config.name,
                        detail="it ignored its cancellation; killing the worker",
                    )
                self.kill(handle, overdue.reason, overdue.task_id)

    def enforce_stop_deadlines(self, now: float) -> None:
        """A retiring worker (shutdown, a settings edit, a scale-down) still running tasks past its grace is
        killed; its tasks go back to pending, their attempt not counted (the ledger settles them)."""
        for handle in list(self.handles):
            if handle.stop_deadline is not None and now > handle.stop_deadline and not handle.ledger.killed:
                log_event(
                    log, logging.WARNING, "shutdown_grace_expired", worker=handle.config.name, detail="stopping it"
                )
                self.kill(handle, KillReason.SHUTDOWN)

    def reap(self, now: float) -> None:
        with self._handles_lock:
            exited = [handle for handle in self.handles if has_exited(handle.process.pid)]
            for handle in exited:
                self.handles.remove(handle)
        for handle in exited:
            while self.read_status(handle):  # everything the worker said before it died
                pass
            returncode = waitstatus_code(handle.process.pid)
            # The zombie's pid is not free until we reap it: killing its group cannot hit a newcomer,
            # and the same-host rescuer (maintenance thread) still sees it alive, leaving its tasks to us.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle.process.pid, signal.SIGKILL)  # processes its tasks started go with it
            try:
                self._settle_tasks_of_dead_worker(handle, returncode)
            except DBAPIError as error:  # the store retried for a while; the database is still away
                log_event(
                    log,
                    logging.ERROR,
                    "task_settle_failed",
                    worker=handle.config.name,
                    error=str(error.orig).strip().splitlines()[0],
                    detail="its tasks are recovered when their leases expire",
                )
            handle.process.wait()
            os.close(handle.status_fd)
            os.close(handle.wake_fd)
            expected = handle.retiring or returncode == 0
            level = logging.INFO if expected else logging.ERROR
            log_event(
                log,
                level,
                "worker_exited",
                name=handle.config.name,
                pid=handle.process.pid,
                returncode=returncode,
                detail=describe_exit(returncode),
            )
            delay = self.respawn.exited(handle.number, started=handle.started, now=now, expected=expected)
            if delay > 0:
                log_event(
                    log,
                    logging.ERROR,
                    "worker_crash_loop",
                    name=handle.config.name,
                    deaths=self.respawn.young_deaths(handle.number),
                    within_seconds=QUICK_DEATH_SECONDS,
                    respawn_in=round(delay, 1),
                )

    def reap_adopted(self) -> None:
        """As a subreaper this process also inherits processes that tasks detached on purpose, once their
        worker is gone: reap them when they exit (workers and the fork server are reaped elsewhere)."""
        with self._handles_lock:
            ours = {handle.process.pid for handle in self.handles}
        if self.forkserver is not None and self.forkserver.pid is not None:
            ours.add(self.forkserver.pid)
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in ours:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)

    def _settle_tasks_of_dead_worker(self, handle: WorkerHandle, returncode: int) -> None:
        """Everything the worker held, at once: its unrecorded successes are recorded, each task it was
        executing gets the outcome its death means (the ledger decides), and the tasks it had claimed but
        not started go back to pending without an attempt. The store's owner guards make each part a
        no-op if already done."""
        ledger = handle.ledger
        for message in ledger.decode_deferred():
            self.report_unreadable(handle, message)
        executing = ledger.settlement(returncode)
        for task in executing:
            if task.how is Interruption.RELEASE:
                log_event(log, logging.INFO, "task_released", task_id=task.task_id, detail=task.message)
        counts = self.store.settle_dead_worker(
            handle.worker_id, finished=list(ledger.deferred.values()), executing=executing
        )
        if any((counts.recorded, counts.interrupted, counts.released)):
            log_event(
                log,
                logging.INFO,
                "worker_tasks_settled",
                name=handle.config.name,
                recorded=counts.recorded,
                interrupted=counts.interrupted,
                released=counts.released,
            )
        for task in executing:
            if task.how is Interruption.FAIL and task.task_id not in ledger.kill_reasons:
                log_event(log, logging.WARNING, "task_worker_died", task_id=task.task_id, worker=handle.config.name)

    # -- signals and shutdown ------------------------------------------------------------------------

    def _wake_main_loop(self) -> None:
        """The settings watcher's reload is due: wake the loop now rather than at its next tick."""
        with contextlib.suppress(OSError):  # a full pipe wakes it as well
            os.write(self._signal_w, b"w")

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)  # only record; set_wakeup_fd wakes the main loop

    def handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._signal_r, 4096)
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                log_event(log, logging.INFO, "sighup", detail="reloading settings")
                self.reload_settings()
            elif self.shutting_down and signum == signal.SIGINT:
                log_event(
                    log,
                    logging.WARNING,
                    "second_interrupt",
                    detail="stopping now; running tasks recover through their leases",
                )
                self._hard_stop = True
            elif not self.shutting_down:
                self.begin_shutdown(signal.Signals(signum).name)

    def begin_shutdown(self, why: str) -> None:
        grace = self.settings.shutdown_grace
        log_event(log, logging.INFO, "shutdown_started", signal=why, grace=grace, detail="finishing running tasks")
        systemd.notify("STOPPING=1")
        self.shutting_down = True
        for handle in list(self.handles):
            self.retire(handle)

    # -- main loop ------------------------------------------------------------------------------------

    def start_duties(self) -> None:
        """The settings watcher, the wake-up of idle workers and the periodic duties (rescuers, retention,
        the scheduler, the rollup). Started once the first workers are: a worker claims right away and
        polls while idle, and the start-up recovery these duties repeat has run already (run())."""
        self.update_schedules(self.settings)
        path = self.settings.path
        if path is not None:
            self.watcher = SettingsWatcher(path, self._wake_main_loop)
            self.watcher.start()
            if file_stamp(path) != self._settings_stamp:
                self.reload_settings()  # edited since it was read, before the watcher was up
        self.maintenance = MaintenanceThread(
            [
                (self.dead_worker_rescuer, LEASE_RESCUE_SECONDS),
                (LeaseRescuer(self.store), LEASE_RESCUE_SECONDS),
                (self.retention, RETENTION_SECONDS),
                (self.scheduler, SCHEDULER_SECONDS),
                # Keeps `taskq stats`, /metrics and the charts cheap and current with no dashboard running.
                (StatsRollup(self.store), ROLLUP_SECONDS),
            ]
        )
        self.maintenance.start()
        threading.Thread(target=self._wake_loop, name="wake", daemon=True).start()

    def _wake_loop(self) -> None:
        from taskq import wakeup  # watchdog's observers on SQLite: not before the first workers are started

        signal_source = wakeup.wake_signal(self.store.engine)
        try:
            while not self._stop_wake.is_set():
                if signal_source.wait(1.0):
                    self.nudge_all()
                    # A busy database changes thousands of times a second; busy workers do not need
                    # telling. Changes during this pause are still pending and nudge right after it.
                    time.sleep(NUDGE_COALESCE_SECONDS)
        finally:
            signal_source.close()

    def tick(self, now: float) -> int | None:
        """One round of the supervisor's decisions at `now` (monotonic seconds), after the status lines and
        signals that arrived were applied: deadlines, stop deadlines, the dead reaped, the count converged,
        readiness, the watchdog. Returns the pool's exit code once it is done, else None."""
        if self._hard_stop:
            for handle in list(self.handles):
                with contextlib.suppress(ProcessLookupError):
                    handle.process.kill()
            return 1
        if self.watcher is not None and self.watcher.reload_due():
            self.reload_settings()
        self.enforce_deadlines(now)
        self.enforce_stop_deadlines(now)
        self.reap(now)
        if self.forkserver is not None:
            self.reap_adopted()
        if self.shutting_down:
            if not self.handles:
                log_event(log, logging.INFO, "shutdown_complete")
                return 0
        else:
            self.converge(now)
            if not self.announced_ready and self.workers_up():
                self.announced_ready = True
                systemd.notify("READY=1")
                log_event(log, logging.INFO, "pool_ready", workers=self.wanted_workers)
        if self.watchdog_every is not None and now >= self.next_watchdog:
            systemd.notify("WATCHDOG=1")
            self.next_watchdog = now + self.watchdog_every
        return None

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        os.set_blocking(self._signal_w, False)
        os.set_blocking(self._signal_r, False)
        signal.set_wakeup_fd(self._signal_w)
        registry.import_task_modules(self.settings.imports)
        # Orphans of a dead supervisor on this host first: once killed, their tasks are recovered, and the
        # workers started below are the host's only ones.
        OrphanKiller(self.store).run_once(utc_now())
        self.dead_worker_rescuer.run_once(utc_now())  # a restart on this host recovers at once
        self.converge(time.monotonic())
        self.start_duties()
        log_event(
            log,
            logging.INFO,
            "pool_started",
            workers=self.wanted_workers,
            database=urls.describe(self.settings.database),
        )
        self._log_if_paused()
        self.watchdog_every = systemd.watchdog_interval()
        self.next_watchdog = time.monotonic()
        try:
            while True:
                with self._handles_lock:
                    status_fds = {handle.status_fd: handle for handle in self.handles}
                readable, _, _ = select.select([self._signal_r, *status_fds], [], [], LOOP_TICK_SECONDS)
                for fd in readable:
                    if fd in status_fds:
                        self.read_status(status_fds[fd])
                if readable and self._signal_r not in readable:
                    # Busy workers write a line per task start and end: reading them in batches lets
                    # them write into the pipe without waking this process thousands of times a second.
                    time.sleep(STATUS_COALESCE_SECONDS)
                if self._signal_r in readable or self._signals:
                    self.handle_signals()
                code = self.tick(time.monotonic())
                if code is not None:
                    return code
        finally:
            self._stop_wake.set()
            if self.maintenance is not None:
                self.maintenance.stop()
            if self.watcher is not None:
                self.watcher.stop()
            signal.set_wakeup_fd(-1)
            if self.forkserver is not None:
                self.forkserver.stop()
            self.store.dispose()


def run_pool(settings: Settings) -> int:
    return Pool(settings).run()


__all__ = ["Pool", "SettingsError", "run_pool"]
