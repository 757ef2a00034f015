"""A clean Debian 12 root for following an install guide to the letter (tests/test_install_*chroot.py).

debootstrap makes one minbase root per test session (``build``); each test gets its own copy
(``copy_of``), so the Pi guide and the cloud guide both start from the same untouched system without
paying for debootstrap twice. Commands run in it with chroot, as root, with systemctl offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.harness.requires import missing, need_tool

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/punchproof-debootstrap")  # debootstrap's downloaded packages, kept between runs
WHEELS = "var/cache/punchproof-wheels"  # inside the root: where pip finds the wheels (/etc/pip.conf)
# pip builds this repository's wheel in the repository itself (build/, *.egg-info): scripts/test's two workers
# take turns (``wheel_of_this_repository``), or one build deletes what the other is writing
BUILD_LOCK = Path(tempfile.gettempdir()) / f"punchproof-wheel-{hashlib.sha256(bytes(REPO)).hexdigest()[:12]}.lock"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing): one process at a time, across pytest's workers."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wheel_of_this_repository(wheels: Path, extras: str = "", *, deps: bool = True) -> Path:
    """Build this repository's wheel (and, with ``deps``, its dependencies' wheels) into ``wheels``."""
    command = [sys.executable, "-m", "pip", "wheel", "-q", *(() if deps else ("--no-deps",)), "-w", str(wheels)]
    with locked(BUILD_LOCK):
        build = subprocess.run([*command, f"{REPO}{extras}"], capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    return next(wheels.glob("punchproof-*.whl"))


def build(root: Path) -> Path:
    """debootstrap a minbase bookworm with sudo and systemd (Raspberry Pi OS and cloud images have both)."""
    if os.geteuid() != 0:
        missing("the chroot install tests need root (CI runs as root)")
    debootstrap = need_tool("debootstrap", "debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [debootstrap, "--variant=minbase", f"--cache-dir={CACHE}", "--include=sudo,systemd", "bookworm", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/sudoers.d/offline").write_text('Defaults env_keep += "SYSTEMD_OFFLINE"\n')
    (root / "etc/sudoers.d/offline").chmod(0o440)
    # as Debian's installer writes it, with this machine's name (a chroot shares it): sudo looks it up, and
    # without it warns "unable to resolve host" on the terminal before the command's own prompt
    hosts = f"127.0.0.1\tlocalhost\n127.0.1.1\t{socket.gethostname()}\n::1\t\tlocalhost\n"
    (root / "etc/hosts").write_text(hosts)
    return root


def copy_of(base: Path, root: Path) -> Path:
    """A copy of the session's root with /proc and /dev/pts mounted; ``remove`` undoes all three.

    /dev/pts as on a real machine: sudo (Debian's sudoers say ``use_pty``) runs its command in a
    new pseudo-terminal whenever it is started from a terminal, and without a devpts of its own the
    chroot has none to give ("sudo: unable to allocate pty"). A new instance, so that nothing in
    the root touches the host's terminals; the root's /dev/ptmx opens the instance beside it.
    """
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    (root / "dev" / "pts").mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5", "devpts", str(root / "dev/pts")],
        check=True,
    )
    return root


def remove(root: Path) -> None:
    mounts = [root / "dev" / "pts", root / "proc"]
    for mount in mounts:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    if not any(os.path.ismount(mount) for mount in mounts):  # never delete through a mounted /proc or /dev/pts
        shutil.rmtree(root, ignore_errors=True)


def add_wheels(root: Path, extras: str = "") -> Path:
    """This repository's wheel and its dependencies in a folder of the root that pip uses instead of PyPI,
    as on a machine without internet access; returns the project's wheel."""
    wheel = wheel_of_this_repository(root / WHEELS, extras)
    (root / "etc/pip.conf").write_text(f"[global]\nno-index = true\nfind-links = /{WHEELS}\n")
    return wheel


def guide_commands(guide: Path) -> list[str]:
    """Every command of the guide's ``sh`` blocks, one per line; a here-document is one command with its lines."""
    blocks = re.findall(r"```sh\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    commands: list[str] = []
    for block in blocks:
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip():
                continue
            heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
            if heredoc:
                body = []
                for more in lines:
                    body.append(more)
                    if more == heredoc.group(1):
                        break
                line = "\n".join([line, *body])
            commands.append(line)
    return commands


def in_root(
    root: Path, command: str, stdin: str = "", *, enter: Sequence[str] = (), terminal: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with bash in the root, as root; ``enter`` prefixes chroot (e.g. nsenter into a namespace).

    ``terminal``: run it on a terminal of its own, as a person at a shell does (``on_terminal``)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "SYSTEMD_OFFLINE": "1",  # no systemd runs in a chroot: enable the units, start nothing
    }
    argv = [*enter, "chroot", str(root), "/bin/bash", "-ec", f"cd /root && {command}"]
    if terminal:
        return on_terminal(argv, stdin, env=env, timeout=600)
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
        start_new_session=True,  # no controlling terminal either: getpass reads stdin, not the tester's tty
    )


PROMPT = re.compile(r"[:：?]\s*$")  # what a question waiting for its answer ends with


def _asks(screen: str) -> bool:
    """Whether the screen ends with a question. A line of sudo's own ("sudo: unable to resolve host ...") is
    not one, though a read may stop right after its "sudo: "."""
    last = screen.rsplit("\n", 1)[-1]
    return bool(PROMPT.search(last)) and not last.startswith("sudo:")


def on_terminal(
    argv: Sequence[str], stdin: str = "", *, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with a new pseudo-terminal as its controlling terminal and stdin, stdout and stderr.

    Each line of ``stdin`` is typed when a prompt is on the screen, as a person answers one: input
    typed ahead is what ``getpass`` throws away when it turns echo off. The screen (stdout and stderr
    together, as a terminal shows them) comes back in ``stdout``.
    """
    answers = stdin.splitlines(keepends=True)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509 - after setsid, in the child
    )
    os.close(slave)
    screen, fresh = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    # poll, not select: a pytest worker that has run hundreds of tests may hold descriptors above select's 1024
    watch = select.poll()
    watch.register(master, select.POLLIN)
    try:
        while time.monotonic() < deadline:
            if not watch.poll(1000):
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process on the terminal has closed it
                break
            if not chunk:
                break
            screen += chunk
            fresh += chunk
            if answers and _asks(fresh.decode(errors="replace")):
                os.write(master, answers.pop(0).encode())
                fresh.clear()
        else:
            process.kill()
            raise AssertionError(
                f"{shlex.join(argv)} did not finish in {timeout} s on its terminal:\n{screen.decode()}"
            )
        code = process.wait(timeout=60)
    finally:
        os.close(master)
    text = screen.decode(errors="replace").replace("\r\n", "\n")
    return subprocess.CompletedProcess(list(argv), code, stdout=text, stderr="")
