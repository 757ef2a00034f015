"""HR master data pushed to the plant's appliances through a real Mosquitto: the CLI's push-plant-config, the
automatic push after import-hr, and nothing pushed when nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cloud import witness
from cloud.appliances import registry
from cloud.config import CloudSettings
from cloud.hr.models import Employee, PlantBadge, ShiftDef
from cloud.plantconfig.config_push import ConfigVersion
from cloud.plantconfig.push import push_plant
from cloud.store import Plant, open_db
from ledger import SigningKey, topics
from ledger.config_message import SignedConfig
from tests.cloud.hr.test_hr import GOOD, workbook
from tests.cloud.test_config_push import retained
from tests.harness.clock import FrozenClock

ROOT = Path(__file__).resolve().parents[3]


def _setup(tmp_path, broker, *, staff: bool = True) -> Path:
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'[cloud]\nstate_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/cloud.sqlite3"\n'
        f"[mqtt]\nport = {broker.port}\n",
        encoding="utf-8",
    )
    settings = CloudSettings.load(config)
    witness.create(settings)
    db = open_db(settings.database_url)
    with db.connection_context():  # closed when it exits, early return or not
        for name in ("pi-01", "pi-02"):
            registry.register(
                {
                    "plant": "p1",
                    "appliance": name,
                    "log": f"punchproof/p1/{name}/1",
                    "public_key": SigningKey.generate().verify_key.pem(),
                },
                FrozenClock(),
            )
        plant = Plant.get_by_id("p1")
        if not staff:
            return config
        emp = Employee.create(employee_no="E1001", name="张三", phone="13800138000")
        PlantBadge.create(plant=plant, user_id="1001", employee=emp, roster="W")
        ShiftDef.create(plant=plant, shift_id="D", spans="08:00-17:00")
    return config


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_push_plant_config_reaches_every_appliance_and_skips_an_unchanged_one(tmp_path, broker):
    config = _setup(tmp_path, broker)
    first = _cli(config, "push-plant-config", "--plant", "p1", "--by", "hr-wang")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("published version 1") == 2
    settings = CloudSettings.load(config)
    key = witness.load(settings)
    for name in ("pi-01", "pi-02"):
        signed = SignedConfig.decode(retained(broker.port, topics.config("p1", name)))
        document = signed.verify(key.verify_key)
        assert [e["user_id"] for e in document.sections["employees"]] == ["1001"]
        assert "phone" not in document.sections["employees"][0]  # attendance data only, never contacts
        assert [s["id"] for s in document.sections["shifts"]] == ["D"]
    again = _cli(config, "push-plant-config", "--plant", "p1")
    assert again.returncode == 0 and again.stdout.count("unchanged") == 2
    db = open_db(settings.database_url)
    with db.connection_context():
        assert ConfigVersion.select().count() == 2
        emp = Employee.create(employee_no="E1002", name="李四")
        PlantBadge.create(plant=Plant.get_by_id("p1"), user_id="1002", employee=emp)
        pushed = push_plant("p1", by="hr-li", settings=settings, clock=FrozenClock())
        assert [p.pushed.version for p in pushed if p.pushed] == [2, 2]
    db.close()


def test_an_hr_import_pushes_the_plant_configuration(tmp_path, broker):
    config = _setup(tmp_path, broker, staff=False)
    book = workbook(tmp_path / "onboarding.xlsx", GOOD)
    done = _cli(config, "import-hr", "--plant", "p1", str(book))
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout and done.stdout.count("published version 1") == 2
    settings = CloudSettings.load(config)
    document = SignedConfig.decode(retained(broker.port, topics.config("p1", "pi-02"))).verify(
        witness.load(settings).verify_key
    )
    assert len(document.sections["employees"]) > 1 and {s["id"] for s in document.sections["shifts"]} >= {"D", "N"}
