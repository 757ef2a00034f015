"""A command run on a pseudo-terminal, as a person at an SSH session runs it: a test reads its
prompts and types the answers (``expect``, ``send``), so the command sees a real terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path


class PtySession:
    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.output = ""  # everything the command wrote, and the echo of what was typed
        self._seen = 0
        self._master: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PtySession:
        master, slave = pty.openpty()
        self._process = subprocess.Popen(
            self.argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.cwd, env=self.env, start_new_session=True
        )
        os.close(slave)
        self._master = master
        return self

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read until ``text`` appears after the previous match; return what came up to and with it."""
        assert self._master is not None
        deadline = time.monotonic() + timeout
        while (found := self.output.find(text, self._seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; the screen so far:\n{self.output[self._seen :]}")
            ready, _, _ = select.select([self._master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # EIO: the command closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the command ended before {text!r}:\n{self.output[self._seen :]}")
                self.output += chunk.decode("utf-8", errors="replace").replace("\r\n", "\n")
        shown, self._seen = self.output[self._seen : found + len(text)], found + len(text)
        return shown

    def send(self, line: str) -> None:
        assert self._master is not None
        os.write(self._master, (line + "\n").encode("utf-8"))

    def eof(self) -> None:
        """Ctrl-D at the start of a line."""
        assert self._master is not None
        os.write(self._master, b"\x04")

    def wait(self, timeout: float = 30.0) -> int:
        assert self._process is not None and self._master is not None
        code = self._process.wait(timeout=timeout)
        os.close(self._master)
        return code
