"""`taskq dashboard` as a real process: it refuses a public address without a token, and serves one behind
it. (The JSON API, pages and access rules in this process: tests/contract/test_web_api.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TOKEN = "s3cret-token-for-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_dashboard(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskq", "--db", f"sqlite:///{tmp_path / 'cli.db'}", "dashboard", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TASKQ_DATABASE_URL": ""},
    )


def test_the_command_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    process = run_dashboard(tmp_path, "--host", "0.0.0.0", "--port", str(free_port()))
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "refusing to serve the dashboard on 0.0.0.0" in lines[0]
    assert "dashboard.token" in lines[0]


def test_the_command_serves_a_public_address_behind_the_token(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(f"dashboard:\n  token: {TOKEN}\n")
    port = free_port()
    process = run_dashboard(tmp_path, "--host", "0.0.0.0", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=5)
            except urllib.error.HTTPError as error:
                assert error.code == 401
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the dashboard did not start listening"
                time.sleep(0.05)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["pending"] == 0
    finally:
        process.terminate()
        process.wait(timeout=30)
