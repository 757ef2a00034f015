"""The pages' worker serves the board and the kiosk without the log writer's side and the cryptography package
(its ``_rust.abi3.so`` is some 5 MB resident; #25 item 1's 200 MB for every appliance process). The brake's
notice on every signed-in page imported ``appliance.capture.enrolment`` (the log writer, the template vault,
ledger, cryptography), and the day page's module imported ``ledger`` at its top. A fresh process (create_app
on the plant's real database, Flask's test client, signed in) lists the modules it holds before and after
serving them.

``appliance.config`` still imports ``ledger`` (and so cryptography) at its top for ``Settings.cloud_key``: until
that import is made where the key is read, the whole process holds them, which the second test says (strict:
it fails as soon as config stops loading them, to have the marker removed)."""

from __future__ import annotations

import json
import subprocess
import sys

from appliance.store import RemovalBrake
from tests.appliance.web.test_attendance_pages import DAY, PASSWORD, Plant, local
from tests.harness.clock import FrozenClock

SERVE = """
import json, re, sys
from appliance.config import Settings
from appliance.web import create_app

settings = Settings.from_dict(json.loads(sys.argv[1]))
client = create_app(settings).test_client()
before = sorted(sys.modules)
page = client.get("/login").get_data(as_text=True)
token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
assert client.post("/login", data={"csrf": token, "username": "boss", "password": sys.argv[2]}).status_code == 302
shown = {}
for path in sys.argv[3:]:
    answer = client.get(path)
    shown[path] = [answer.status_code, answer.get_data(as_text=True)]
print(json.dumps({"shown": shown, "before": before, "modules": sorted(sys.modules)}))
"""


PATHS = [f"/?date={DAY}", f"/?date={DAY}&partial=1", "/kiosk", "/kiosk/feed", "/board/version"]
LOG_WRITERS_SIDE = ("appliance.capture.enrolment", "appliance.capture.punchlog", "appliance.capture.template_vault")


def serve_board_and_kiosk(tmp_path) -> dict:
    plant = Plant(tmp_path, FrozenClock(local(2, 8, 30)))
    try:
        plant.punch("1001", local(2, 7, 55))
        plant.read_terminal()
        plant.evaluator.run_once()
        RemovalBrake.insert(id=1, held='["1002"]', held_before=2, held_limit=1, held_ms=0).execute()
    finally:
        plant.db.close()
    config = {
        "plant": {"id": "p1", "name": "东莞一厂"},
        "appliance": {"id": "pi-01", "state_dir": str(tmp_path)},
        "mqtt": {"cloud_key_file": "/nonexistent"},
        "terminals": [{"name": "gate-1", "host": "127.0.0.1"}],
    }
    out = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(config), PASSWORD, *PATHS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert {path: shown[0] for path, shown in answer["shown"].items()} == dict.fromkeys(PATHS, 200)
    board = answer["shown"][f"/?date={DAY}"][1]
    assert "张三" in board and "已暂停删除" in board  # the rows, and the brake's notice is still said
    return answer


def test_serving_the_board_and_kiosk_loads_none_of_the_log_writers_side(tmp_path):
    answer = serve_board_and_kiosk(tmp_path)
    added = set(answer["modules"]) - set(answer["before"])
    loaded = sorted(m for m in added if m.split(".")[0] in ("cryptography", "ledger") or m in LOG_WRITERS_SIDE)
    assert loaded == [], loaded


def test_the_pages_worker_holds_no_cryptography_package(tmp_path):
    answer = serve_board_and_kiosk(tmp_path)
    loaded = [m for m in answer["modules"] if m.split(".")[0] in ("cryptography", "ledger")]
    assert loaded == [], loaded
