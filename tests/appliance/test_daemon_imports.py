"""The daemon of a plant with only ZK terminals does not load the push receiver's HTTP stack (Flask, Werkzeug,
Jinja2: about 9 MB resident, #25 item 1's 200 MB for every appliance process). ``appliance.config`` named the
receiver's ``Limits`` at its top, which imported the receiver and Flask into every process reading the settings."""

from __future__ import annotations

import json
import subprocess
import sys

HTTP_STACK = ("flask", "werkzeug", "jinja2", "firmware_bridge.adms")


def test_the_daemons_modules_leave_the_push_receivers_http_stack_out():
    code = "import json, sys; import appliance.runtime.daemon, appliance.config; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    loaded = [m for m in json.loads(out) if m.startswith(HTTP_STACK)]
    assert loaded == [], loaded
