"""What the published distribution says about itself: an MIT license, metadata PyPI shows, a version, and a
README whose links and images work on PyPI (absolute). Building and installing the wheel for real:
tests/process/test_wheel_install.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import taskq
from taskq.distribution import version

ROOT = Path(__file__).resolve().parents[2]
PROJECT_URL = "https://github.com/taskq-sql/taskq"
DOCS_URL = "https://taskq-sql.github.io/taskq/"  # mkdocs.yml's site_url (tests/process/test_docs.py)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


def project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_is_mit_and_says_so() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert project()["license"] == "MIT" and project()["license-files"] == ["LICENSE"]


def test_pypi_metadata_authors_classifiers_and_urls() -> None:
    meta = project()
    assert meta["authors"] and "Typing :: Typed" in meta["classifiers"]
    assert any(c.startswith("Programming Language :: Python :: 3.") for c in meta["classifiers"])
    assert not any(c.startswith("License ::") for c in meta["classifiers"])  # PEP 639: the expression says it
    assert meta["urls"] and all(url.startswith((PROJECT_URL, DOCS_URL)) for url in meta["urls"].values())
    assert meta["urls"]["Documentation"] == DOCS_URL
    assert (ROOT / "taskq" / "py.typed").exists()


def test_version_is_the_installed_distributions() -> None:
    assert taskq.__version__ == version() != ""


def test_readme_links_and_images_are_absolute_and_name_the_project() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = [first or second for first, second in LINK.findall(readme)]
    assert targets, "the README has links"
    relative = [target for target in targets if not target.startswith(("https://", "#"))]
    assert relative == [], relative
    github = [target for target in targets if "github" in target]
    assert all(
        target.startswith((f"{PROJECT_URL}/", "https://raw.githubusercontent.com/taskq-sql/taskq/", DOCS_URL))
        for target in github
    )
    assert any(target.startswith(DOCS_URL) for target in targets), "the README links to the documentation site"


def test_the_alembic_ini_promises_only_what_env_py_does() -> None:
    ini = (ROOT / "alembic.ini").read_text()
    env = (ROOT / "migrations" / "env.py").read_text()
    assert "target_metadata=metadata" in env.replace(" ", "")
    if "settings.yaml" in ini:
        assert "load_settings()" in env
