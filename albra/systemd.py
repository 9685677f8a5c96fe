"""systemd integration: sd_notify (READY / WATCHDOG / STOPPING / STATUS) and unit rendering.

sd_notify is a datagram to ``$NOTIFY_SOCKET`` (an abstract socket when it starts with '@'); no library is
needed. Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the runner code calls it unconditionally.
The watchdog must be fed only while the loop turns and its health checks pass: the runner decides when to call
:meth:`Notifier.watchdog`, this module only says how often it should (half of ``WATCHDOG_USEC``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


class Notifier:
    """Sends sd_notify messages when running under systemd ``Type=notify``."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        e = os.environ if env is None else env
        self.socket_path = e.get("NOTIFY_SOCKET") or None
        usec = e.get("WATCHDOG_USEC")
        pid = e.get("WATCHDOG_PID")
        self.watchdog_usec = int(usec) if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to feed the watchdog (half the configured timeout), or None if it is off."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def notify(self, *fields: str) -> bool:
        if not self.socket_path:
            return False
        addr = self.socket_path
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.connect(addr)
                s.sendall("\n".join(fields).encode())
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *( [f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *( [f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")


@dataclass(frozen=True)
class UnitOptions:
    """What the units are built from. ``state_dir``/``log_dir`` are the config's own (absolute) directories — the
    only places the hardened services may write; by default ``state``/``logs`` under ``project_dir``."""

    project_dir: Path
    albra_bin: Path
    config: Path
    user: str | None = None
    watchdog_sec: int = 60
    stop_timeout_sec: int = 45
    memory_max: str = "800M"
    state_dir: Path | None = None
    log_dir: Path | None = None

    @property
    def writable(self) -> list[Path]:
        return [self.state_dir or self.project_dir / "state", self.log_dir or self.project_dir / "logs"]


FAILURE_UNIT = "albra-alert@.service"


HARDENING = """NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={rw}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=no
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=
UMask=0077
MemoryMax={memory_max}"""


def _common(o: UnitOptions) -> str:
    rw = " ".join(str(p) for p in o.writable)
    user = f"User={o.user}\n" if o.user else ""
    return (f"{user}WorkingDirectory={o.project_dir}\nEnvironmentFile=-{o.project_dir / '.env'}\n"
            f"Environment=PYTHONUNBUFFERED=1\n" + HARDENING.format(rw=rw, memory_max=o.memory_max))


def runner_unit(o: UnitOptions) -> str:
    """``albra@.service``: one trading runner per account (``systemctl enable --now albra@master``)."""
    if o.stop_timeout_sec < 35:
        raise ValueError("TimeoutStopSec must be at least 35 s: the runner waits up to 30 s for in-flight work")
    return f"""# Rendered by `albra service install`. One trading runner per account: albra@<account>.service
[Unit]
Description=albra trading runner for account %i
Documentation=file://{o.project_dir / 'README.md'}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=600
StartLimitBurst=5
OnFailure=albra-alert@%n.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={o.albra_bin} run --account %i --config {o.config}
Restart=on-failure
RestartSec=15
WatchdogSec={o.watchdog_sec}
TimeoutStartSec=180
TimeoutStopSec={o.stop_timeout_sec}
KillSignal=SIGTERM
KillMode=mixed
SendSIGKILL=yes
{_common(o)}

[Install]
WantedBy=multi-user.target
"""


def bot_unit(o: UnitOptions) -> str:
    """``albra-bot.service``: the one Telegram command bot for all accounts."""
    return f"""# Rendered by `albra service install`. The Telegram command bot (one poller per token).
[Unit]
Description=albra Telegram bot
After=network-online.target
Wants=network-online.target
OnFailure=albra-alert@%n.service

[Service]
Type=simple
ExecStart={o.albra_bin} bot --config {o.config}
Restart=on-failure
RestartSec=15
TimeoutStopSec=30
{_common(o)}

[Install]
WantedBy=multi-user.target
"""


def failure_unit(o: UnitOptions) -> str:
    """``albra-alert@.service``: run by systemd (``OnFailure=``) when a runner or the bot unit fails — crashed,
    killed, watchdog timeout, start limit hit. It queues a CRITICAL alert naming the unit and delivers it to Telegram
    at once (``albra service notify-failure``), so a dead runner is reported even while the bot is down too."""
    return f"""# Rendered by `albra service install`. Started by OnFailure= of albra@.service and albra-bot.service.
[Unit]
Description=albra alert: %i failed

[Service]
Type=oneshot
ExecStart={o.albra_bin} service notify-failure %i --config {o.config}
TimeoutStartSec=60
{_common(o)}
"""


def render_units(o: UnitOptions) -> dict[str, str]:
    return {"albra@.service": runner_unit(o), "albra-bot.service": bot_unit(o), FAILURE_UNIT: failure_unit(o)}


def install_units(o: UnitOptions, target_dir: Path) -> list[Path]:
    """Write the unit files (mode 0644) and return their paths."""
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(o).items():
        p = target_dir / name
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, p)
        written.append(p)
    return written
