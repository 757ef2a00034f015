"""Figure: bench/plant_burst.py with the appliance running as arm64 code: a second Pi estimate.

The daemon and the pages run in an arm64 Debian 12 root (the one tests/test_install_arm64.py makes,
debootstrap under qemu-user-static, cached in /var/cache/punchproof-debian-roots), installed as
docs/install-pi.md steps 1 and 2 say (apt-get, a virtualenv in /opt/punchproof, pip with the
aarch64 wheels), and every instruction they execute is an arm64 instruction translated by qemu.
The terminals, the clients and the set-up commands (init, import-roster, create-user) run on this
machine as in plant_burst.py; the plant's directory is bind-mounted into the root at the same path,
so the configuration's paths hold on both sides.

What it tells, and what it does not: qemu's translation makes every instruction cost several host
instructions, so this is one more slow machine, on all of this machine's cores; it is not a Pi's
memory (the processes' RSS and PSS include qemu's translated code), nor a Pi's CPU speed. Beside
the cgroup estimate (``plant_burst.py --pi3-slowdown 10``), it shows whether arm64 code paths
(the aarch64 wheels of cryptography, orjson, cffi) behave and how much slower the whole runs.

    sudo .venv/bin/python bench/plant_burst_arm64.py [--minutes 10] [--workers 5000]

Needs root, debootstrap and qemu-user-static (scripts/setup --test installs both). Arguments are
plant_burst.py's, but for --pi3-slowdown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402  (the harness reports a machine that cannot emulate arm64 with pytest.skip)

from bench import plant_burst  # noqa: E402
from bench.plant_common import Plant  # noqa: E402
from tests.harness import debian_root as debian  # noqa: E402

VENV = "/opt/punchproof"
GUIDE = debian.REPO / "docs" / "install-pi.md"


@dataclass
class Arm64Plant(Plant):
    """The plant of plant_burst.py with the daemon and gunicorn started inside ``arm64_root``."""

    arm64_root: Path = Path()

    @property
    def _inside(self) -> Path:
        return self.arm64_root / str(self.root).lstrip("/")

    def start(self) -> Plant:
        self._inside.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(self.root), str(self._inside)], check=True)
        BOUND.append(self._inside)
        return super().start()

    def spawn(self, name: str, *args: object) -> None:
        log = (self.root / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [shutil.which("chroot") or "chroot", str(self.arm64_root), f"{VENV}/bin/punchproof", *map(str, args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> dict[str, int]:
        try:
            return super().stop()
        finally:
            unbind()


BOUND: list[Path] = []  # the plant's directory, bind-mounted in the root: unmounted before the root is removed


def unbind() -> None:
    """Unmount the plant's directory from the root (lazily: the plant's log files are still open here, as
    Plant.spawn hands them to the processes). Not os.path.ismount: a bind mount on the same file system
    looks like any directory to it."""
    while BOUND:
        subprocess.run(["umount", "-l", str(BOUND.pop())], check=True)


def install(root: Path) -> None:
    """docs/install-pi.md steps 1 and 2 in the root: the system packages, the virtualenv, the wheel."""
    wheel = debian.add_wheels(root, arch="arm64")
    (root / "root" / wheel.name).write_bytes(wheel.read_bytes())
    (root / "dev" / "shm").mkdir(exist_ok=True)  # gunicorn's --worker-tmp-dir
    for command in debian.guide_commands(GUIDE):
        result = debian.in_root(root, command)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.endswith("punchproof --version"):
            print(f"installed in the arm64 root: {result.stdout.strip()}", flush=True)
            return


def main() -> None:
    if "--pi3-slowdown" in sys.argv:
        sys.exit("--pi3-slowdown 是 cgroup 估算的选项，这里不适用 / --pi3-slowdown is the cgroup estimate's option")
    if os.geteuid() != 0:
        sys.exit("需要 root 权限（chroot、mount） / needs root (chroot, mount): sudo .venv/bin/python ...")
    try:
        qemu = debian.emulate_arm64()
    except pytest.skip.Exception as exc:
        sys.exit(f"本机无法运行 arm64 程序 / this machine cannot run arm64 programs: {exc}")
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"arm64 under emulation: {version}", flush=True)
    with tempfile.TemporaryDirectory(prefix="plant-arm64-") as tmp:
        root = Path(tmp) / "root"
        packages = (*debian.PACKAGES, *debian.guide_packages(GUIDE))  # as tests/test_install_arm64.py has it
        debian.mount_in(debian.build_cached(root, "arm64", packages))
        try:
            install(root)
            plant_burst.main(sys.argv[1:], partial(Arm64Plant, arm64_root=root))
        finally:
            unbind()  # never remove the root through a mounted directory
            debian.remove(root)


if __name__ == "__main__":
    main()
