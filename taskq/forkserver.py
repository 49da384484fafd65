"""Workers forked in milliseconds from a small preloaded process, instead of a fresh interpreter each.

The supervisor starts `python -m taskq.forkserver` (a fresh interpreter, so no threads and no open
database connections are ever forked) with one end of a socket pair. The server imports the worker's code
once (SQLAlchemy, the store: most of a worker's start-up and memory) and freezes it out of the garbage
collector, so forked workers share those pages. For each request (a WorkerConfig and its two pipe ends,
passed with SCM_RIGHTS) it double-forks: the worker is orphaned at once and adopted by the supervisor,
which is a child subreaper, so the supervisor waits for it, reads its exit status and kills its process
group exactly as for a child it had started itself. Task modules are imported by each worker after the
fork (a code change on disk reaches the next worker), and a restart of the server picks up taskq's own.
Linux only (prctl); elsewhere the pool starts each worker with `python -m taskq.worker`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, replace
from typing import Any

from taskq.events import log_event
from taskq.identity import supervisor_environment

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PRELOAD_ENV = "TASKQ_PRELOAD"  # comma-separated modules the server imports before forking any worker
REPLY_TIMEOUT_SECONDS = 30.0  # the first request waits for the server's imports
# systemd's notify variables (taskq/systemd.py): only the supervisor may say READY or STOPPING, and the
# server may be started before the supervisor has taken them out of its own environment.
SUPERVISOR_ONLY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

_early: ForkServerClient | None = None  # started by start_early(), handed to the pool by pool_client()


def _prctl(option: int, value: Any) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def set_process_name(name: str) -> None:
    """What ps, top and /proc/<pid>/comm show (at most 15 bytes)."""
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]))


def become_subreaper() -> bool:
    """Orphaned descendants (the fork server's workers) are re-parented to this process."""
    return sys.platform.startswith("linux") and _prctl(PR_SET_CHILD_SUBREAPER, 1)


class ForkedProcess:
    """A worker forked by the server: the supervisor's child once adopted; the subset of Popen the pool uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class ForkServerClient:
    """The supervisor's side: starts the server on first use and after it died or was restarted."""

    def __init__(self, environment: dict[str, str] | None = None) -> None:
        self._environment = environment  # the workers' environment (fixed at each server's start), or ours
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "taskq.forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env={
                name: value
                for name, value in (self._environment or os.environ).items()
                if name not in SUPERVISOR_ONLY_VARIABLES
            },
        )
        theirs.close()
        ours.settimeout(REPLY_TIMEOUT_SECONDS)
        self._socket = ours

    def restart(self) -> None:
        """Later workers fork from a fresh import of taskq (after an upgrade and a reload)."""
        self.stop()
        self.start()

    def spawn(self, config: Any, fds: tuple[int, int]) -> ForkedProcess:
        self.start()
        assert self._socket is not None
        # PYTHONPATH as the supervisor has it now: it adds app directories (registry.add_import_paths)
        # after an early-started server has begun, and each worker imports its task modules from them.
        message = {"config": asdict(config), "pythonpath": os.environ.get("PYTHONPATH")}
        request = json.dumps(message).encode() + b"\n"
        try:
            socket.send_fds(self._socket, [request], list(fds))
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = self._socket.recv(64)
                if not chunk:
                    raise ConnectionError("the fork server exited")
                reply += chunk
        except OSError:
            self.stop()  # started afresh on the next request
            raise
        return ForkedProcess(int(reply))

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()  # the server exits when it reads end-of-file
            self._socket = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None


def start_early() -> None:
    """Start the server now, before the supervisor imports its own code: the two imports (~0.35 s each
    on a quiet 2-core machine) then overlap instead of running one after the other. `taskq worker` calls
    this first thing (taskq/launch.py); the pool takes the running server with pool_client()."""
    global _early
    if _early is None and become_subreaper():
        _early = ForkServerClient(supervisor_environment())  # stamped: a later pool tells orphans by it
        _early.start()


def pool_client(environment: dict[str, str] | None = None) -> ForkServerClient | None:
    """The server for a pool: the early one if started, else a new one with `environment`; None where
    forking from a server is not available (not Linux), and the pool starts `python -m taskq.worker` instead."""
    global _early
    client, _early = _early, None
    if client is None and become_subreaper():
        client = ForkServerClient(environment)
    if client is not None:
        client.start()  # a no-op for the early one while it runs
    return client


def _use_pythonpath(pythonpath: str | None) -> None:
    """The supervisor's import path in a worker forked from a server started before it was complete."""
    entries = [entry for entry in (pythonpath or "").split(os.pathsep) if entry]
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath  # and in the processes its tasks start


def _become_worker(config: Any, middle_pid: int, run: Any) -> None:
    os.setsid()  # its own session and process group: what its tasks start goes with it
    # The worker watches its parent to notice a lost supervisor: wait until the intermediate child has
    # exited and the supervisor (the subreaper) has adopted us, so it sees its real parent from the start.
    while os.getppid() == middle_pid:
        time.sleep(0.0005)
    set_process_name(f"taskq-{config.name}")
    code = 1
    try:
        code = run(config)
    except BaseException:  # through the worker's log set-up: in its format, flushed at once (ERROR)
        log_event(logging.getLogger("taskq.worker"), logging.ERROR, "worker_crashed", exc_info=True)
    finally:
        try:
            from taskq import tracing  # imported by the worker already; never before the fork

            tracing.flush()  # os._exit skips the OpenTelemetry SDK's atexit export
        except BaseException:
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(code)


def _serve(server: socket.socket) -> None:
    from taskq.worker import run_worker
    from taskq.worker_config import WorkerConfig

    # Modules every worker needs before its own imports, imported once here so that forks share them:
    # `manage.py taskq_worker` names one that runs django.setup() (seconds of app loading in big projects).
    for module in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
        importlib.import_module(module.strip())
    gc.freeze()  # the imported modules' objects stay out of collections, so their pages stay shared
    buffered = b""
    while True:
        data, fds, _flags, _address = socket.recv_fds(server, 65536, 2)
        if not data:
            return  # the supervisor is gone
        buffered += data
        line, _, buffered = buffered.partition(b"\n")
        wake_fd, status_fd = fds
        message = json.loads(line)
        config = replace(WorkerConfig(**message["config"]), wake_fd=wake_fd, status_fd=status_fd)
        read_pid, write_pid = os.pipe()
        middle = os.fork()
        if middle == 0:  # the intermediate child: fork the worker and leave it orphaned at once
            os.close(read_pid)
            middle_pid = os.getpid()  # read here: by the time the worker asked, it may already be gone
            worker = os.fork()
            if worker == 0:
                os.close(write_pid)
                server.close()
                _use_pythonpath(message["pythonpath"])
                _become_worker(config, middle_pid=middle_pid, run=run_worker)
            os.write(write_pid, str(worker).encode())
            os._exit(0)
        os.close(write_pid)
        os.waitpid(middle, 0)  # once it has exited, the worker belongs to the supervisor
        worker_pid = os.read(read_pid, 32)
        os.close(read_pid)
        os.close(wake_fd)
        os.close(status_fd)
        server.sendall(worker_pid + b"\n")


def main() -> int:
    set_process_name("taskq-forksrv")
    # The terminal's Ctrl-C reaches the whole process group; the supervisor decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = socket.socket(fileno=int(sys.argv[1]))
    try:
        _serve(server)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
