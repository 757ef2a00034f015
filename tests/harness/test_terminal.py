"""The harness's pseudo-terminal (``debian_root.on_terminal``) in a process that already holds many descriptors,
as a pytest worker does after hundreds of tests: select() refuses one above 1024, poll() does not."""

from __future__ import annotations

import os
import resource

from tests.harness.debian_root import on_terminal


def test_a_prompt_is_answered_when_the_terminals_descriptor_is_above_1024():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        result = on_terminal(
            ["bash", "-c", "read -p 'name: ' x; echo hello $x"], "bob\n", env={"PATH": "/usr/bin:/bin"}, timeout=20
        )
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.returncode == 0 and result.stdout == "name: bob\nhello bob\n", result.stdout
