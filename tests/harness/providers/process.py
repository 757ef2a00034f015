"""A fake provider served from its own process, as a real provider is another machine: its CPU time and its
threads are not the caller's (benchmarks measure the cloud's own CPU per send beside the wall time).

``ProviderProcess(make, *args, delay_s=...)`` starts ``make(*args)`` (a ``ProviderServer`` class, and what its
constructor takes: picklable) in a child process and answers its URL; ``report()`` reads what the child's server
saw so far (``Seen``); leaving the ``with`` block stops the child.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.harness.providers.base import ProviderServer

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Seen:
    """What the provider's server saw: each accepted message's idempotency key (Aliyun's OutId, in order), the
    requests it was asked, the most it answered at once, and the CPU seconds its process (``pid``) spent."""

    out_ids: tuple[str, ...]
    requests: int
    most_in_flight: int
    cpu_s: float
    pid: int


class ProviderProcess:
    def __init__(self, make: type[ProviderServer], *args: Any, delay_s: float = 0.0) -> None:
        self._make, self._args, self._delay_s = make, args, delay_s
        self._child: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> ProviderProcess:
        """The child is a fresh interpreter (``python -m tests.harness.providers.process``), not a fork of a process
        holding database connections and threads; it is told what to serve, and answers its URL, by pickles on its
        standard input and output."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.providers.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self._ask((self._make, self._args, self._delay_s))
        self.url = self._answer()
        return self

    def report(self) -> Seen:
        self._ask("report")
        seen: Seen = self._answer()
        return seen

    def _ask(self, what: Any) -> None:
        assert self._child is not None and self._child.stdin is not None, "start() first"
        pickle.dump(what, self._child.stdin)
        self._child.stdin.flush()

    def _answer(self) -> Any:
        assert self._child is not None and self._child.stdout is not None
        try:
            return pickle.load(self._child.stdout)
        except EOFError as err:
            raise RuntimeError(f"the provider's process ended (exit status {self._child.poll()})") from err

    def stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            assert child.stdin is not None
            child.stdin.close()  # the child's signal to stop
        except OSError:
            pass
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    def __enter__(self) -> ProviderProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    import time

    make, args, delay_s = pickle.load(requests)
    server = make(*args)
    server.delay_s = delay_s
    with server:
        pickle.dump(server.url, answers)
        answers.flush()
        while True:
            try:
                command = pickle.load(requests)
            except EOFError:  # the parent closed our input: stop
                return
            if command == "report":
                with server._lock:
                    sent = getattr(server, "sent", [])
                    out_ids = tuple(str(s.get("out_id", "")) for s in sent)
                    seen = Seen(out_ids, len(server.requests), server.most_in_flight, time.process_time(), os.getpid())
                pickle.dump(seen, answers)
                answers.flush()


def main() -> None:
    """The child: answers go out on what was its standard output; anything printed goes to standard error."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    from tests.harness.providers import process  # ``Seen`` pickled by its module's name, not ``__main__``

    process.main()
