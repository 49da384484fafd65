"""The Django guide (docs/how-to/django.md) and examples/django_site, verbatim: the files the guide shows are
the example's, and its commands run in a copy of the example (migrate, `manage.py taskq_worker &`, runserver
on a free port instead of 8000, then the curl lines): the committed view's task runs to SUCCESSFUL with its
progress at 100 (JSON and the self-reloading page), the rolled-back view leaves neither note nor task."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_pool import DJANGO_SKIP_REASON
from poolkit import REPO, wait_for

pytest.importorskip("taskq.contrib.django.framework", reason=DJANGO_SKIP_REASON)

EXAMPLE = REPO / "examples" / "django_site"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def section() -> str:
    return (REPO / "docs" / "how-to" / "django.md").read_text()


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(section()) if lang == language]


def test_the_guide_shows_the_examples_files_verbatim() -> None:
    shown = {body.splitlines()[0][2:]: body for body in blocks("python")}
    assert set(shown) == {"site_project/settings.py (excerpt)", "notes/tasks.py", "notes/views.py"}
    for name in ("notes/tasks.py", "notes/views.py"):
        assert shown[name] == (EXAMPLE / name).read_text(), name
    excerpt = shown.pop("site_project/settings.py (excerpt)").split("\n", 1)[1]
    assert excerpt in (EXAMPLE / "site_project" / "settings.py").read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]]]:
    """A copy of the example (its database stays out of the checkout), `python` on PATH being this one."""
    folder = tmp_path / "django_site"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("db.sqlite3*", "__pycache__"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TASKQ_", "DJANGO_"))}
    # This interpreter's own bin first (a symlink elsewhere would lose its venv): `python` is the venv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO)
    background: list[subprocess.Popen[bytes]] = []
    try:
        yield folder, env, background
    finally:
        for process in background:  # each in a session of its own: runserver's reloader child goes too
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def test_the_guide_commands_run_the_example(site) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("django.tasks", reason="the example is written for Django >= 6 (django.tasks)")
    folder, env, background = site
    start, calls = blocks("bash")
    lines = start.strip().splitlines()
    assert lines[0] == "cd examples/django_site"  # the copy is the working directory instead
    port = free_port()
    for number, line in enumerate(lines[1:]):
        command = line.split("#")[0].strip().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        if command.endswith("&") or command.startswith("python manage.py runserver"):
            log = open(folder / f"background-{number}.log", "w")  # noqa: SIM115  (the child holds it)
            background.append(
                subprocess.Popen(
                    ["bash", "-c", "exec " + command.rstrip("& ")],
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        else:
            subprocess.run(["bash", "-c", command], cwd=folder, env=env, check=True, capture_output=True)
    worker_log = folder / "background-1.log"
    wait_for(lambda: "worker_started" in worker_log.read_text(), 30, what="the pool started")

    def curl(line: str) -> tuple[int, str]:
        command = line.split("#")[0].strip().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        done = subprocess.run(
            ["bash", "-c", command + " -s -w '\\n%{http_code}'"], cwd=folder, env=env, capture_output=True, text=True
        )
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body

    post, failing, status, page = calls.strip().splitlines()
    wait_for(lambda: curl(status)[0] in (200, 500), 30, what="runserver answering")
    code, body = curl(post)
    assert code == 202 and json.loads(body) == {"note": 1, "task": "1"}, body
    assert curl(failing)[0] == 500
    first = curl(page)[1]
    if "SUCCESSFUL" not in first:  # the task sleeps 0.8 s, so this is the usual case: the page reloads itself
        assert '<meta http-equiv="refresh" content="1">' in first, first

    def finished() -> dict | None:
        answer = json.loads(curl(status)[1])
        return answer if answer["status"] in ("SUCCESSFUL", "FAILED") else None

    answer = wait_for(finished, 30, what="the note's task finished")
    assert answer == {
        "status": "SUCCESSFUL",
        "progress": 100.0,
        "message": "step 4 of 4",
        "return_value": {"note": 1, "words": 3},
        "errors": [],
    }
    done = curl(page)[1]
    assert '<progress max="100" value="100.0"></progress> step 4 of 4' in done and "refresh" not in done, done
    notes = subprocess.run(  # the worker wrote through the ORM; the rolled-back view left nothing
        [sys.executable, "manage.py", "shell", "-c", "from notes.models import Note; "
         "print(list(Note.objects.values_list('pk', 'published')))"],
        cwd=folder, env=env, capture_output=True, text=True, check=True,
    )
    assert notes.stdout.strip().splitlines()[-1] == "[(1, True)]"
    ids = subprocess.run(
        ["bash", "-c", "python -m taskq --db sqlite:///db.sqlite3 list --json"],
        cwd=folder, env=env, capture_output=True, text=True, check=True,
    )
    assert [task["name"] for task in json.loads(ids.stdout)] == ["notes.tasks.publish"]
