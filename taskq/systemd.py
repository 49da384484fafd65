"""systemd integration without libsystemd: sd_notify datagrams (READY / STOPPING / WATCHDOG) to
$NOTIFY_SOCKET, and the unit file `taskq systemd-unit` prints (contrib/taskq.service is its default)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Unit:
    """What differs between installs; the defaults are contrib/taskq.service."""

    exec_start: str = "/srv/myapp/.venv/bin/taskq"
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
ExecStart={exec_start} worker{settings_option}
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


def render_unit(unit: Unit = Unit()) -> str:
    if unit.database:
        database_line = f"Environment={DATABASE.env}={unit.database}"
    else:
        database_line = f"# The database is the one settings.yaml names ({DATABASE.env} would override it)."
    return UNIT_TEMPLATE.format(
        name=unit.name,
        user=unit.user,
        group=unit.group,
        working_directory=unit.working_directory,
        database_line=database_line,
        exec_start=unit.exec_start,
        settings_option=f" --settings {unit.settings}" if unit.settings else "",
        protect_home=unit.protect_home,
    )
