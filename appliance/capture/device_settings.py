"""Terminal settings the cloud may change (``devices`` in its configuration), laid over appliance.toml.

Only a ZK terminal's clock policy and poll interval, never its address or comm key. They are read
when the daemon starts: the terminal workers are built from them, so a change takes effect at the
next start (the appliance says so in its answer to the cloud).
"""

from __future__ import annotations

import dataclasses

from appliance.config import Settings, TerminalSettings
from appliance.store import DeviceSetting


def overlay(settings: Settings) -> Settings:
    """``settings`` with each ZK terminal's clock policy and poll interval as the cloud last set them."""
    remote = {row.terminal: row for row in DeviceSetting.select()}
    if not remote:
        return settings
    terminals = []
    for terminal in settings.terminals:
        row = remote.get(terminal.name)
        if isinstance(terminal, TerminalSettings) and row is not None:
            terminal = dataclasses.replace(
                terminal,
                clock_alarm_s=float(row.clock_alarm_s),
                clock_correct_above_s=None if row.clock_correct_above_s is None else float(row.clock_correct_above_s),
                poll_seconds=float(row.poll_seconds),
            )
        terminals.append(terminal)
    return dataclasses.replace(settings, terminals=tuple(terminals))
