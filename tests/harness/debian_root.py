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
PACKAGES = ("sudo", "systemd")  # what the root has besides minbase
ROOT_PYTHON = "3.11"  # Debian 12's python3: the version a foreign root's wheels are fetched for
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


def build(root: Path, arch: str = "", packages: Sequence[str] = PACKAGES) -> Path:
    """debootstrap a minbase bookworm with sudo and systemd (Raspberry Pi OS and cloud images have both).

    ``arch``: another architecture than this machine's (``arm64``), its programs run by qemu-user-static
    (``emulate_arm64`` first); its packages are cached apart from the native ones. ``packages``: what the root
    has besides minbase."""
    if os.geteuid() != 0:
        missing("the chroot install tests need root (CI runs as root)")
    debootstrap = need_tool("debootstrap", "debootstrap")
    cache = CACHE.with_name(f"{CACHE.name}-{arch}") if arch else CACHE
    cache.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [
            debootstrap,
            "--variant=minbase",
            *((f"--arch={arch}",) if arch else ()),
            f"--cache-dir={cache}",
            f"--include={','.join(packages)}",
            "bookworm",
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return settle(root)


def settle(root: Path) -> Path:
    """What the root takes from this machine (its resolver, its name) and sudo's setting for the tests."""
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/sudoers.d/offline").write_text('Defaults env_keep += "SYSTEMD_OFFLINE"\n')
    (root / "etc/sudoers.d/offline").chmod(0o440)
    # as Debian's installer writes it, with this machine's name (a chroot shares it): sudo looks it up, and
    # without it warns "unable to resolve host" on the terminal before the command's own prompt
    hosts = f"127.0.0.1\tlocalhost\n127.0.1.1\t{socket.gethostname()}\n::1\t\tlocalhost\n"
    (root / "etc/hosts").write_text(hosts)
    return root


# a foreign root, made once (debootstrap's second stage under emulation takes minutes), kept as a tarball named
# for what went into it; a new package list, debootstrap or arch makes a new one
ROOTS = Path("/var/cache/punchproof-debian-roots")
# aarch64 ELF executables, as qemu's own qemu-binfmt-conf.sh registers them
AARCH64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
AARCH64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def emulate_arm64() -> str:
    """Make this kernel run arm64 programs with qemu-user-static, as a fresh CI machine needs: binfmt_misc
    mounted, qemu-aarch64 registered and enabled, with the F flag (the interpreter is opened once, here, so a
    chroot needs no copy of it). Skips (fails when strict) only if the kernel refuses; returns qemu's path."""
    if os.geteuid() != 0:
        missing("running arm64 programs needs root (CI runs as root)")
    qemu = need_tool("qemu-aarch64-static", "qemu-user-static")
    if not (BINFMT / "register").exists():
        mounted = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True, text=True, check=False
        )
        if mounted.returncode != 0:
            missing(f"this kernel does not let binfmt_misc be mounted, so arm64 programs cannot run: {mounted.stderr}")
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() and shutil.which("update-binfmts"):  # binfmt-support has qemu-user-static's entry
        subprocess.run(["update-binfmts", "--import", "qemu-aarch64"], capture_output=True, check=False)
    if entry.exists() and "F" not in entry.read_text().split("flags:")[-1].split("\n")[0]:
        entry.write_text("-1")  # registered to load qemu from inside each root: ours opens it once, here
    if not entry.exists():
        try:
            (BINFMT / "register").write_text(f":qemu-aarch64:M::{AARCH64_MAGIC}:{AARCH64_MASK}:{qemu}:F")
        except OSError as exc:
            missing(f"this kernel refuses to register qemu-aarch64 with binfmt_misc: {exc}")
    if entry.read_text().startswith("disabled"):
        entry.write_text("1")
    return qemu


def build_cached(root: Path, arch: str, packages: Sequence[str] = PACKAGES) -> Path:
    """``build(root, arch, packages)``, from the tarball of an earlier run when there is one (``ROOTS``)."""
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"], capture_output=True, text=True)
    key = hashlib.sha256(f"bookworm minbase {arch} {','.join(packages)} {version.stdout}".encode()).hexdigest()[:16]
    tarball = ROOTS / f"bookworm-{arch}-{key}.tar"
    ROOTS.mkdir(parents=True, exist_ok=True)
    with locked(tarball.with_suffix(".lock")):  # pytest's workers, or a test and a benchmark: one builds it
        if tarball.exists():
            root.mkdir(parents=True)
            subprocess.run(["tar", "-xpf", str(tarball), "-C", str(root)], check=True)
            return settle(root)
        build(root, arch, packages)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-cpf", str(partial), "-C", str(root), "."], check=True)
        partial.rename(tarball)  # whole or not at all: a run stopped while writing leaves no tarball behind
    return root


def guide_packages(guide: Path) -> list[str]:
    """The packages the guide's ``apt-get install`` commands install."""
    found = [
        re.sub(r"^.*apt-get install( -y)?", "", c).split() for c in guide_commands(guide) if "apt-get install" in c
    ]
    return [package for packages in found for package in packages]


def copy_of(base: Path, root: Path) -> Path:
    """A copy of the session's root with /proc and /dev/pts mounted; ``remove`` undoes all three.

    /dev/pts as on a real machine: sudo (Debian's sudoers say ``use_pty``) runs its command in a
    new pseudo-terminal whenever it is started from a terminal, and without a devpts of its own the
    chroot has none to give ("sudo: unable to allocate pty"). A new instance, so that nothing in
    the root touches the host's terminals; the root's /dev/ptmx opens the instance beside it.
    """
    subprocess.run(["cp", "-a", str(base), str(root)], check=True)
    return mount_in(root)


def mount_in(root: Path) -> Path:
    """/proc and a /dev/pts of its own in ``root`` (``copy_of``); ``remove`` unmounts them."""
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


def add_wheels(root: Path, extras: str = "", *, arch: str = "") -> Path:
    """This repository's wheel and its dependencies in a folder of the root that pip uses instead of PyPI,
    as on a machine without internet access; returns the project's wheel. ``arch``: the root's architecture
    when it is not this machine's (``foreign_wheels``)."""
    wheel = foreign_wheels(root / WHEELS, arch, extras) if arch else wheel_of_this_repository(root / WHEELS, extras)
    (root / "etc/pip.conf").write_text(f"[global]\nno-index = true\nfind-links = /{WHEELS}\n")
    return wheel


FOREIGN_WHEELS = Path("/var/cache/punchproof-wheels")  # compiled wheels for other machines, kept between runs
MACHINES = {"arm64": "aarch64"}  # Debian's name for an architecture, and the wheels' (and uname's)


def foreign_wheels(wheels: Path, arch: str, extras: str = "") -> Path:
    """The wheels a root of ``arch`` installs: those this machine builds that run anywhere (``none-any``),
    and for each compiled one the same version built for ``arch`` by its publisher (PyPI, or the index pip is
    set up to use here), downloaded once into ``FOREIGN_WHEELS``. Debian 12's glibc is 2.36: a wheel for any
    manylinux up to 2.36 runs there (pip is told each: it does not infer the older ones). Returns the project's
    wheel."""
    wheels.mkdir(parents=True, exist_ok=True)
    cache = FOREIGN_WHEELS / arch
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="punchproof-wheels-") as native:
        wheel_of_this_repository(Path(native), extras)
        compiled = []
        for built in Path(native).glob("*.whl"):
            if built.name.endswith("-none-any.whl"):
                shutil.copy(built, wheels)
            else:
                name, version = built.name.split("-")[:2]
                compiled.append(f"{name}=={version}")
    machine = MACHINES[arch]
    platforms = [
        f"--platform=manylinux2014_{machine}",
        *(f"--platform=manylinux_2_{m}_{machine}" for m in range(17, 37)),
    ]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(cache)]
    command += [*platforms, "--python-version", ROOT_PYTHON, "--implementation", "cp", *compiled]
    fetched = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert fetched.returncode == 0, f"the {arch} wheels of {compiled} could not be downloaded:\n{fetched.stderr}"
    for requirement in compiled:
        name, version = requirement.split("==")
        found = [w for w in cache.glob(f"{name}-{version}-*.whl") if w.name.endswith(f"_{machine}.whl")]
        assert found, f"no {arch} wheel of {requirement} in {cache}"
        shutil.copy(max(found), wheels)
    return next(wheels.glob("punchproof-*.whl"))


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
