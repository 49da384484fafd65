"""Running the examples as people do: real servers and a real worker pool as subprocesses, talked to
over HTTP, with every wait bounded by a deadline and every process's log kept for failure messages."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.05
STOP_SECONDS = 15.0


def example_env(database_url: str) -> dict[str, str]:
    """The examples import as `examples.*` and find their database through TASKQ_DATABASE_URL."""
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": python_path, "TASKQ_DATABASE_URL": database_url}


class Service:
    """One subprocess in its own process group (so its children go with it), logging to a file."""

    def __init__(self, name: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"--- {self.name} (exit {self.process.poll()}) log ---\n{self.log()[-4000:]}"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever the group left behind
        return self.process.wait(STOP_SECONDS)


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, services: tuple[Service, ...] = ()) -> T:
    """Poll `predicate` until it returns something truthy; fail with the services' logs at the deadline
    or as soon as one of them has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        dead = [service for service in services if service.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            reason = "exited early" if dead else f"not within {timeout} s"
            logs = "\n".join(service.describe() for service in services)
            raise AssertionError(f"{what}: {reason}\n{logs}")
        time.sleep(POLL_SECONDS)


def listening_url(service: Service, pattern: str, *, timeout: float = 30.0) -> str:
    """The base URL a server bound to port 0 reports in its log."""
    match = wait_until(
        lambda: re.search(pattern, service.log()),
        timeout=timeout,
        what=f"{service.name} listening",
        services=(service,),
    )
    return f"http://127.0.0.1:{match.group(1)}"


def start_worker(cwd: Path, database_url: str, module: str, *, workers: int = 2) -> Service:
    args = [sys.executable, "-m", "taskq", "--db", database_url, "--import", module]
    args += ["worker", "--workers", str(workers)]
    return Service("worker", args, cwd=cwd, env=example_env(database_url))


def http_json(method: str, url: str, body: Any = None, *, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:  # not JSON (an HTML error page): the code alone
            return error.code, None


def responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
