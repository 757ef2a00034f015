"""``punchproof appliance init`` run on a terminal without its required options: a walk-through.

The plant's IT person answers a few questions (Chinese first). Each answer is checked as it is given
(the ids' form, the time zone, head office's key file), each time clock is probed as it is named and
shown as ``bridge probe`` shows it (serial, firmware, records), and the file is then written by the
same code as with options, which checks it whole. Last, head office's registration file is taken
right away (as ``appliance join`` would), or later.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.config import SLUG, Settings
from appliance.sync.join import JoinError, join
from firmware_bridge.errors import TerminalError
from firmware_bridge.types import TerminalInfo
from firmware_bridge.zk.commands import print_info
from firmware_bridge.zk.driver import ZKTerminal
from ledger import Malformed, VerifyKey

DEFAULT_CLOUD_KEY = "/etc/punchproof/cloud-witness.pub"
Probe = Callable[[str, int, str], TerminalInfo]


def probe_zk(host: str, port: int, timezone: str) -> TerminalInfo:
    return ZKTerminal(host, port, tz=ZoneInfo(timezone), timeout=5.0).probe()


class Aborted(Exception):
    """The person ended the walk-through (Ctrl-D): nothing is written."""


class InitWizard:
    def __init__(self, ask: Callable[[str], str], out: TextIO, *, probe: Probe = probe_zk) -> None:
        self._ask = ask
        self._out = out
        self._probe = probe

    def fill(self, args: argparse.Namespace) -> None:
        """Ask for every setting ``args`` lacks (options given on the command line are not asked)."""
        self._say("首次设置 / first setup: Enter keeps the value in [brackets]; Ctrl-D stops without writing.\n")
        if not args.plant:
            args.plant = self._slug("工厂编号 / plant id (e.g. dongguan-1)", "")
        if args.plant_name is None:
            args.plant_name = self._line("工厂名称 / plant name", "")
        if args.timezone is None:
            args.timezone = self._timezone()
        if not args.appliance:
            args.appliance = self._slug("本机名称 / this appliance's name (e.g. pi-01)", "pi-01")
        if not args.terminal:
            args.terminal = self._terminals(args.timezone)
        if not args.cloud_key:
            args.cloud_key = self._cloud_key()
        if args.mqtt_host is None:
            args.mqtt_host = self._line(
                "消息服务器 / MQTT broker host (head office's registration file sets it too)", "127.0.0.1"
            )
        if not args.identity:
            args.identity = self._line("身份文件 / identity file to write for head office", f"{args.appliance}.json")

    def offer_join(self, config: Path, identity: str) -> None:
        """Take head office's registration file now, or say how to later."""
        self._say(
            f"\n请把 {identity} 发给总部；总部运行 'punchproof cloud register-appliance' 后会发回注册文件。\n"
            f"Send {identity} to head office; they register it and send back a registration file.\n"
        )
        while True:
            path = self._line("注册文件 / registration file (Enter: later, with 'punchproof appliance join FILE')", "")
            if not path:
                self._say(f"稍后运行 / later: punchproof appliance join -c {config} FILE\n")
                return
            try:
                registration = json.loads(Path(path).read_text(encoding="utf-8"))
                self._say(join(Settings.load(config), registration) + "\n")
            except (OSError, ValueError, JoinError) as err:
                self._say(f"未加入 / not joined: {err}\n")
                continue
            self._say(f"请删除 {path}（含密码）/ delete {path} now: it holds the password\n")
            return

    # -- the questions -------------------------------------------------------------------------
    def _terminals(self, timezone: str) -> list[str]:
        terminals: list[str] = []
        while True:
            address = self._line(f"考勤机 {len(terminals) + 1} 的地址 / terminal address, IP[:PORT] (Enter: done)", "")
            if not address:
                return terminals
            host, _, port_text = address.partition(":")
            if not host or (port_text and not port_text.isdigit()):
                self._say("  格式 / use IP or IP:PORT, e.g. 192.168.1.201 or 192.168.1.201:4370\n")
                continue
            port = int(port_text or 4370)
            try:
                info = self._probe(host, port, timezone)
            except TerminalError as err:
                self._say(f"  连接失败 / no answer: {err}\n")
                if self._line("  仍然添加？/ add it anyway? (y/N)", "n").lower() not in ("y", "yes", "是"):
                    continue
            else:
                print_info(info, self._out)
            name = self._slug("  名称 / its name", f"gate-{len(terminals) + 1}")
            if any(spec.startswith(f"{name}=") for spec in terminals):
                self._say(f"  {name} 已使用 / is taken\n")
                continue
            terminals.append(f"{name}={host}:{port}")

    def _timezone(self) -> str:
        while True:
            zone = self._line("时区 / time zone", "Asia/Shanghai")
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                self._say(f"  未知时区 / unknown time zone {zone!r} (e.g. Asia/Shanghai)\n")
                continue
            return zone

    def _cloud_key(self) -> str:
        default = DEFAULT_CLOUD_KEY if Path(DEFAULT_CLOUD_KEY).exists() else ""
        while True:
            path = self._line("总部公钥 / head office's cloud-witness.pub", default)
            try:
                VerifyKey.from_pem(Path(path).read_bytes())
            except OSError as err:
                self._say(f"  无法读取 / cannot read {path!r}: {err.strerror}\n")
                continue
            except Malformed as err:
                self._say(f"  不是总部公钥 / not head office's key: {err}\n")
                continue
            return path

    def _slug(self, question: str, default: str) -> str:
        while True:
            value = self._line(question, default)
            if SLUG.match(value):
                return value
            self._say("  只用小写字母、数字和 '-' / use lower-case letters, digits and '-'\n")

    def _line(self, question: str, default: str) -> str:
        try:
            answer = self._ask(f"{question} [{default}]: " if default else f"{question}: ").strip()
        except EOFError as err:
            raise Aborted("未写入 / stopped: nothing written") from err
        return answer or default

    def _say(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
