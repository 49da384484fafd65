"""systemd integration without libsystemd: sd_notify datagrams (READY / STOPPING / WATCHDOG) to
$NOTIFY_SOCKET, and the unit file `taskq systemd-unit` prints (contrib/taskq.service is its default)."""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from taskq.model import TaskqError
from taskq.settings import DATABASE

_NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_taken: dict[str, str] | None = None  # the variables once take_notify_environment() removed them


def take_notify_environment() -> None:
    """Keep systemd's notify variables for this process only, as sd_notify(unset_environment=1) does:
    worker processes must not inherit NOTIFY_SOCKET, so only the supervisor can say READY or STOPPING."""
    global _taken
    if _taken is None:
        _taken = {name: os.environ.pop(name) for name in _NOTIFY_VARIABLES if name in os.environ}


def _variable(name: str) -> str | None:
    return _taken.get(name) if _taken is not None else os.environ.get(name)


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not running under a notify-type unit."""
    address = _variable("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when the watchdog is off."""
    usec = _variable("WATCHDOG_USEC")
    pid = _variable("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


HOME_PREFIXES = ("/home/", "/root/", "/run/user/")  # what ProtectHome=yes hides from the service
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.-]+")  # systemd's unit name characters (no "@": not a template)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9/_.,:+=@%$-]+")  # a command-line word systemd reads back as written


class UnitError(TaskqError):
    pass


def _no_controls(text: str) -> str:
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise UnitError(f"{text!r}: a control character (a newline...) cannot be written into a unit file")
    return text


def escape_specifiers(text: str) -> str:
    """A value of a setting that expands specifiers (WorkingDirectory=, ...): `%` is written `%%`."""
    return _no_controls(text).replace("%", "%%")


def quote_word(word: str, *, command: bool = True) -> str:
    """One word of ExecStart= (or with `command=False` of Environment=) as systemd.syntax(7) reads it
    back: double-quoted (with `\\` and `"` escaped) unless plain, so a space does not split it; `%`
    doubled (specifiers); in a command `$` doubled too (ExecStart= expands $VARIABLES, Environment= does not)."""
    text = escape_specifiers(word)
    if command:
        text = text.replace("$", "$$")
    if _PLAIN_WORD.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def protect_home(paths: Iterable[str | Path], homes: Iterable[str] = HOME_PREFIXES) -> str:
    """ProtectHome= for a service that reads `paths`: "read-only" when any of them lies under a home
    directory, as written or once its symlinks are resolved (a venv's bin/python links to a pyenv or
    uv interpreter under /home or /root, whose standard library ProtectHome=yes would hide), else "yes"."""
    prefixes = tuple(homes)
    for path in paths:
        for candidate in (os.path.abspath(path), os.path.realpath(path)):
            if (candidate.rstrip("/") + "/").startswith(prefixes):
                return "read-only"
    return "yes"


@dataclass(frozen=True)
class Unit:
    """What differs between installs; the defaults are contrib/taskq.service."""

    exec_start: tuple[str, ...] = ("/srv/myapp/.venv/bin/taskq",)  # the words that run `taskq`
    working_directory: str = "/srv/myapp"
    user: str = "taskq"
    group: str = "taskq"
    settings: str | None = "/srv/myapp/settings.yaml"
    name: str = "taskq"  # the unit's name: also its StateDirectory, /var/lib/<name>
    database: str | None = "sqlite:////var/lib/taskq/taskq.db"  # None: the one settings.yaml names
    protect_home: str = "yes"  # "read-only" when the code or the venv lives under /home or /root


UNIT_TEMPLATE = """\
# systemd unit for the taskq worker pool ({name}.service), as `taskq systemd-unit` writes it.
#   sudo cp {name}.service /etc/systemd/system/ && sudo systemctl daemon-reload
#   sudo systemctl enable --now {name} && journalctl -u {name} -f
# Edit settings.yaml in WorkingDirectory to rescale live; `systemctl reload {name}` sends SIGHUP (reload too).
# `systemd-analyze security {name}` rates this unit 1.2 OK.
[Unit]
Description=taskq worker pool ({name})
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
# READY=1 is sent once every worker process has started and registered; only the supervisor may notify.
Type=notify
NotifyAccess=main
User={user}
Group={group}
# The app's code: `taskq` imports task modules from here, so the app need not be pip-installed.
# It is read-only to the service (ProtectSystem=strict); only the StateDirectory is writable.
WorkingDirectory={working_directory}
# /var/lib/{name}, created and owned for User=: the SQLite database and its -wal/-shm files live here.
StateDirectory={name}
StateDirectoryMode=0750
Environment=PYTHONUNBUFFERED=1
{database_line}
ExecStart={command}
ExecReload=/bin/kill -HUP $MAINPID
# Only the supervisor gets SIGTERM; it lets running tasks finish (shutdown_grace in settings.yaml,
# default 30 s), then releases the rest back to pending. Give it a little longer than that grace.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=45
Restart=always
RestartSec=2
WatchdogSec=60

# Hardening. The pool needs the network (PostgreSQL), AF_UNIX (sd_notify) and its StateDirectory.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome={protect_home}
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
# Set to no if your tasks use a JIT compiler (numba, PyTorch): it needs writable executable memory.
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
UMask=0027

[Install]
WantedBy=multi-user.target
"""


def user_and_group(user: str | None) -> tuple[str, str]:
    """User= (the given one, else whoever runs the command) and Group=, that user's primary group."""
    import getpass
    import grp
    import pwd

    owner = user or getpass.getuser()
    try:
        group = grp.getgrgid(pwd.getpwnam(owner).pw_gid).gr_name
    except KeyError:  # a user to be created later (useradd --system): its group is usually its name
        group = owner
    return owner, group


def unit_for_this_install(
    *, name: str, user: str | None, working_directory: Path, settings: Path | None, database: str
) -> Unit:
    """The unit that runs this interpreter's taskq (its venv's console script) from `working_directory`."""
    from sqlalchemy.engine import make_url

    workdir = working_directory.resolve()
    script = Path(sys.executable).parent / "taskq"  # the console script of this venv
    exec_start = (str(script),) if script.is_file() else (sys.executable, "-m", "taskq")
    settings_path = str(settings.resolve()) if settings is not None else None
    # SQLite moves to the StateDirectory: the working directory (the code) stays read-only to the service.
    sqlite = make_url(database).get_backend_name() == "sqlite"
    owner, group = user_and_group(user)
    # Everything the service reads: its code, settings, command, interpreter, standard library and taskq.
    read: list[str | Path] = [workdir, *([settings_path] if settings_path else []), exec_start[0], sys.executable]
    read += [sys.prefix, sys.base_prefix, Path(__file__).parent]
    return Unit(
        exec_start=exec_start,
        working_directory=str(workdir),
        user=owner,
        group=group,
        settings=settings_path,
        name=name,
        database=f"sqlite:////var/lib/{name}/taskq.db" if sqlite else None,
        protect_home=protect_home(read),
    )


def render_unit(unit: Unit = Unit()) -> str:
    """The unit file; paths are quoted and escaped per systemd.syntax(7), a bad name is a UnitError."""
    if not UNIT_NAME.fullmatch(unit.name):
        raise UnitError(f"unit name {unit.name!r}: use letters, digits and : _ . - only")
    if unit.database:
        database_line = f"Environment={quote_word(f'{DATABASE.env}={unit.database}', command=False)}"
    else:
        database_line = f"# The database is the one settings.yaml names ({DATABASE.env} would override it)."
    command = [*unit.exec_start, "worker", *(("--settings", unit.settings) if unit.settings else ())]
    return UNIT_TEMPLATE.format(
        name=unit.name,
        user=_no_controls(unit.user),
        group=_no_controls(unit.group),
        working_directory=escape_specifiers(unit.working_directory),
        database_line=database_line,
        command=" ".join(quote_word(word) for word in command),
        protect_home=unit.protect_home,
    )
