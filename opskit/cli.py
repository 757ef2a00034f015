"""What both sides' command lines do alike: subcommands with ``-c CONFIG``, the configuration
commands, and the gunicorn command line that serves the pages.

Each side passes its own loader (its ``_settings(args)``) and its own gunicorn
options; this module only holds the parts whose meaning is the same on both sides.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

Command = Callable[[argparse.Namespace], int]


class Shown(Protocol):
    def shown(self) -> dict[str, Any]: ...


def command_adder(
    cmds: argparse._SubParsersAction,  # type: ignore[type-arg]
    default_config: str,
) -> Callable[[str, Command, str], argparse.ArgumentParser]:
    """``cmd(name, func, help)``: a subcommand; every one but ``init`` reads ``-c/--config``."""

    def cmd(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        if name != "init":
            p.add_argument("-c", "--config", default=default_config, help="default: %(default)s")
        return p

    return cmd


def check_config(args: argparse.Namespace, *, load: Callable[[argparse.Namespace], object]) -> int:
    """Load the configuration (a bad one stops with every problem listed) and say it is fine."""
    load(args)
    print(f"{args.config}: OK")
    return 0


def show_config(args: argparse.Namespace, *, load: Callable[[argparse.Namespace], Shown]) -> int:
    """The configuration with secrets masked, and where each value came from."""
    from opskit.envconfig import render

    print(render(load(args).shown(), as_json=args.json))
    return 0


def gunicorn_argv(
    app: str, *, bind: str, workers: int, config: str | None = None, options: Sequence[str] = ()
) -> list[str]:
    """The command line that serves ``app`` with gunicorn, as both sides' systemd units run it."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        *(["--config", config] if config else []),
        "--bind",
        bind,
        "--workers",
        str(workers),
        *options,
        "--worker-tmp-dir",  # heartbeat files, rewritten every second: on tmpfs, never the SD card
        os.environ.get("RUNTIME_DIRECTORY", "/dev/shm").split(":")[0],  # systemd's RuntimeDirectory=
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
        app,
    ]


class NoPassword(Exception):
    """create-user was given no password: no terminal to ask on, and nothing on standard input."""

    def __str__(self) -> str:
        return (
            "没有输入密码：请在终端上运行，或用 --password-stdin 从标准输入传入 / no password given: run it on a "
            "terminal, or pass it on standard input with --password-stdin"
        )


def read_password(from_stdin: bool) -> str:
    """A new login's password: asked on the terminal; its line on standard input with ``--password-stdin``, or
    when standard input is not a terminal (a guide's command fed by a script, as getpass itself falls back to)."""
    import getpass

    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line.strip():
            raise NoPassword
        return line.rstrip("\n")
    try:
        return getpass.getpass("密码 / password: ")
    except EOFError as err:
        raise NoPassword from err


def account_made(role: str, username: str) -> str:
    return f"已创建账号 {username}（{role}）/ created {role} {username}"


def account_refused(err: Exception) -> str:
    return f"未创建 / not created: {err}"
