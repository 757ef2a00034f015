"""Terminal kinds in the configuration: each kind's settings checked, every problem listed at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import CardReaderSettings, ConfigError, R30xReaderSettings, Settings
from appliance.idmap import IdMapError, load_cards, load_pages

BASE = {
    "plant": {"id": "dongguan-1"},
    "appliance": {"id": "pi-01"},
    "mqtt": {"cloud_key_file": "/etc/punchproof/cloud-witness.pub"},
}


def test_every_kind_loads_with_its_defaults_and_table_paths_relative_to_the_file(tmp_path):
    (tmp_path / "cards.csv").write_text('card,employee\n0012345678,E001\n"123,45678",E002\n')
    (tmp_path / "pages.csv").write_text("# page, badge\n0,E001\n12,E002\n")
    data = {
        **BASE,
        "push": {"host": "192.168.10.2"},
        "terminals": [
            {"name": "gate-1", "host": "192.168.10.21"},
            {"name": "gate-2", "kind": "adms", "serial": "CKJA194960011"},
            {"name": "canteen", "kind": "card", "url": "/dev/ttyUSB0", "cards_file": "cards.csv"},
            {"name": "office", "kind": "r30x", "url": "socket://10.0.0.9:4001", "pages_file": "pages.csv"},
        ],
    }
    settings = Settings.from_dict(data, source=str(tmp_path / "appliance.toml"))
    zk, adms, card, finger = settings.terminals
    assert (zk.kind, zk.port, adms.encoding, settings.push.port) == ("zk", 4370, "gb18030", 8081)
    assert isinstance(card, CardReaderSettings) and (card.baudrate, card.card_format) == (9600, "decimal")
    assert card.cards_file == str(tmp_path / "cards.csv")
    assert isinstance(finger, R30xReaderSettings) and finger.baudrate == 57600
    assert load_cards(Path(card.cards_file)) == {"12345678": "E001", "123,45678": "E002"}
    assert load_pages(Path(finger.pages_file)) == {0: "E001", 12: "E002"}
    assert settings.masked()["terminals"][3]["password"] == 0, "no secret set, nothing to mask"


def test_every_problem_of_every_kind_is_listed(tmp_path):
    (tmp_path / "cards.csv").write_text("1001,E001\n12AB,E002\n1001,E009\n555\n")
    data = {
        **BASE,
        "push": {"host": "0.0.0.0", "port": 70000},
        "terminals": [
            {"name": "gate-2", "kind": "adms", "serial": "has space", "encoding": "klingon"},
            {"name": "canteen", "kind": "card", "url": "/dev/ttyUSB0", "cards_file": "cards.csv", "host": "x"},
            {"name": "canteen-2", "kind": "card", "url": "/dev/ttyUSB0", "cards_file": "missing.csv"},
            {"name": "door", "kind": "card", "url": "", "card_format": "octal", "cards_file": "cards.csv"},
            {"name": "office", "kind": "r30x", "url": "/dev/ttyAMA0"},
            {"name": "kiosk", "kind": "hanvon"},
        ],
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_dict(data, source=str(tmp_path / "appliance.toml"))
    problems = "\n".join(info.value.problems)
    for expected in (
        "'has space' is not a terminal serial number",
        "unknown text encoding 'klingon'",
        "terminals[1] (canteen).host: not a setting of a 'card' terminal",
        "line 2: 卡号 '12AB' 格式不对",
        "line 3: card 1001 is given to both E001 and E009",
        "line 4: needs two columns",
        "missing.csv: cannot read the card table",
        "terminals[3] (door).url: required",
        "terminals[3] (door).card_format: unknown card format 'octal'",
        "terminals[4].pages_file: required",
        "terminals[5].kind: 'hanvon' is not supported",
        "terminals: url '/dev/ttyUSB0' is used twice",
        "push.host: '0.0.0.0' would accept pushes from every network",
        "push.port: 70000 is not a TCP port",
    ):
        assert expected in problems, expected


def test_a_table_saved_by_excel_with_a_bom_and_quoted_wiegand_ids_loads(tmp_path):
    path = tmp_path / "cards.csv"
    path.write_bytes('卡号,工号\r\n0000001001,E001\r\n"7,12345",张三\r\n'.encode("utf-8-sig"))
    assert load_cards(path) == {"1001": "E001", "7,12345": "张三"}
    path.write_bytes("卡号,工号\n1001,张三\n".encode("gbk"))
    with pytest.raises(IdMapError, match="save it as 'CSV UTF-8'"):
        load_cards(path)


def test_check_config_prints_every_problem_and_exits_2(tmp_path):
    (tmp_path / "appliance.toml").write_text(
        '[plant]\nid = "dongguan-1"\n[appliance]\nid = "pi-01"\n[mqtt]\ncloud_key_file = "k.pub"\n'
        '[push]\nhost = "0.0.0.0"\n'
        '[[terminals]]\nname = "gate-2"\nkind = "adms"\nserial = "CKJA1949"\n'
        '[[terminals]]\nname = "canteen"\nkind = "card"\nurl = "/dev/ttyUSB0"\ncards_file = "nope.csv"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "punchproof", "appliance", "check-config", "-c", tmp_path / "appliance.toml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "2 problem(s)" in result.stderr
    assert "push.host: '0.0.0.0'" in result.stderr and "nope.csv: cannot read the card table" in result.stderr
