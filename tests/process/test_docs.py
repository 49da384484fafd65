"""The documentation site: it builds with warnings as errors, its generated references follow the code, and
the code blocks of its pages run (tests/support/docblocks.py says how blocks are marked).

Each page that has blocks to run gets a fresh folder, where `taskq` and `python` are this checkout's, as pip
would install them: its files are written, its pool started in the background, its programs and commands
run in page order, and the pool is stopped with SIGINT (Ctrl+C) at the end, which must exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import docblocks
import pytest
import yaml
from poolkit import kill_tree, wait_for

from taskq.events import EVENTS
from taskq.settings import SETTINGS

REPO = docblocks.REPO
BLOCK_TIMEOUT_SECONDS = 120.0  # a block may wait for a pool to run tasks (`taskq wait --timeout 60`)


def test_the_site_builds_strictly_with_the_generated_references(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2, not a build problem
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")
    # The references are generated, not written: every setting, command and public name is there.
    settings_page = (site / "reference" / "settings" / "index.html").read_text()
    for setting in SETTINGS:
        assert f"<code>{setting.key}</code>" in settings_page, setting.key
        if setting.cli:
            assert setting.cli in settings_page, setting.cli
    from taskq.cli import main

    cli_page = (site / "reference" / "cli" / "index.html").read_text()
    for name, command in main.commands.items():
        assert f"taskq {name}" in cli_page, name
        for parameter in command.params:
            for option in parameter.opts:
                if option.startswith("--"):
                    assert option in cli_page, f"taskq {name} {option}"
    api_page = (site / "reference" / "api" / "index.html").read_text()
    for name in ("task", "TaskSpec", "Store", "Enqueued", "TaskContext", "Retry", "Fail", "open_store", "configure"):
        assert f'id="taskq.{name}"' in api_page, name
    assert 'id="taskq.contrib.django.TaskqBackend"' in api_page
    events_page = (site / "reference" / "log-events" / "index.html").read_text()
    for event in EVENTS:
        assert f"<code>{event}</code>" in events_page, event
    # mkdocs.yml and pyproject agree on where the site lives.
    site_url = yaml.safe_load((REPO / "mkdocs.yml").read_text())["site_url"]
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Documentation"] == site_url


class PageFolder:
    """A fresh folder for one page: its files, its background pools, its programs and commands."""

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "project"
        self.folder.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        script = bin_dir / "taskq"  # the console script pip would install, of this checkout
        script.write_text(f"#!{sys.executable}\nimport sys\nfrom taskq.cli import main\nsys.exit(main())\n")
        script.chmod(0o755)
        (bin_dir / "python").symlink_to(sys.executable)
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("TASKQ_")}
        self.env.pop("NOTIFY_SOCKET", None)
        self.env["PATH"] = os.pathsep.join([str(bin_dir), self.env.get("PATH", "")])
        self.env["PYTHONPATH"] = str(REPO)  # as `pip install -e .` would make it importable
        self.logs = tmp_path
        self.pools: list[tuple[subprocess.Popen[bytes], Path, str]] = []

    def link_examples(self) -> None:
        (self.folder / "examples").symlink_to(REPO / "examples")

    def run(self, block: docblocks.Block, *, files_and_pools_only: bool = False) -> None:
        if block.kind == "file":
            target = self.folder / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body)
        elif block.kind == "pool":
            self.start_pool(block)
        elif files_and_pools_only:
            return
        elif block.kind == "python":
            self.check(block, [sys.executable, "-c", block.body])
        elif block.kind == "shell":
            self.check(block, ["bash", "-c", docblocks.shell_script(block.body)], docblocks.expected_exit(block))

    def check(self, block: docblocks.Block, command: list[str], expected_exit: int = 0) -> None:
        result = subprocess.run(
            command, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_SECONDS
        )
        assert result.returncode == expected_exit, (
            f"{block.where} failed (exit {result.returncode}):\n{block.body}\n--- stdout\n{result.stdout}"
            f"--- stderr\n{result.stderr}{self.pool_logs()}"
        )

    def start_pool(self, block: docblocks.Block) -> None:
        log_path = self.logs / f"pool-{len(self.pools) + 1}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {block.body.strip()}"],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the cleanup reaches every worker
            )
        self.pools.append((process, log_path, block.where))

        def ready() -> bool:
            assert process.poll() is None, f"{block.where}: the pool exited:\n{log_path.read_text()}"
            return "pool_ready" in log_path.read_text()

        wait_for(ready, timeout=60, what=f"{block.where}: pool_ready")

    def pool_logs(self) -> str:
        return "".join(f"\n--- pool of {where}\n{path.read_text()}" for _process, path, where in self.pools)

    def stop(self) -> None:
        """Ctrl+C in each pool's terminal; each must stop gracefully (exit 0)."""
        failures = []
        for process, log_path, where in self.pools:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                code = process.wait(10)
            if code != 0:
                failures.append(f"{where}: the pool exited {code}:\n{log_path.read_text()}")
        assert not failures, "\n".join(failures)


RUN_PAGES = [page for page in docblocks.all_pages() if page.runs]


@pytest.fixture
def page_folder(tmp_path: Path) -> Iterator[PageFolder]:
    folder = PageFolder(tmp_path)
    try:
        yield folder
    finally:
        for process, _log, _where in folder.pools:
            if process.poll() is None:  # a failed test: no graceful stop was asked
                kill_tree(process.pid)
                process.wait(10)


@pytest.mark.parametrize("page", RUN_PAGES, ids=[page.name for page in RUN_PAGES])
def test_the_code_blocks_of_the_page_run(page: docblocks.Page, page_folder: PageFolder) -> None:
    started = time.monotonic()
    if page.with_examples:
        page_folder.link_examples()
    if page.after:
        for block in docblocks.parse(docblocks.DOCS / page.after).blocks:
            page_folder.run(block, files_and_pools_only=True)
    for block in page.blocks:
        page_folder.run(block)
    page_folder.stop()
    print(f"docs/{page.name}: {time.monotonic() - started:.1f} s")
