"""The appliance's configuration: one TOML file, validated as a whole.

Every bad key is reported at once, with the reason, so an installer fixes the file in one go.
Secrets are masked whenever the settings are shown.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger import Malformed, VerifyKey

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SECRET_KEYS = {"password", "comm_key"}


class ConfigError(Exception):
    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class PlantSettings:
    id: str
    name: str = ""
    timezone: str = "Asia/Shanghai"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ApplianceSettings:
    id: str
    state_dir: str = "/var/lib/punchproof"
    log_origin: str = ""  # default: punchproof/<plant>/<appliance>/1


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""
    batch_records: int = 256  # = records per checkpoint, so that batches end at checkpoints
    inflight: int = 8
    ack_timeout_s: float = 10.0
    keepalive_s: int = 30
    cloud_key_file: str = ""  # cloud-witness.pub from head office: acknowledgements must be signed by it


@dataclass(frozen=True)
class WebSettings:
    bind: str = "0.0.0.0:8080"
    workers: int = 2


@dataclass(frozen=True)
class TerminalSettings:
    name: str
    host: str
    kind: str = "zk"
    port: int = 4370
    comm_key: int = 0
    poll_seconds: float = 5.0  # the full read that proves nothing was missed (and catches up after a drop)
    timeout_s: float = 5.0
    encoding: str = "gbk"
    live: bool = True  # also take each punch as the terminal announces it (within a second)
    udp: bool = False  # some older terminals speak UDP only


@dataclass(frozen=True)
class Settings:
    plant: PlantSettings
    appliance: ApplianceSettings
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    web: WebSettings = field(default_factory=WebSettings)
    terminals: tuple[TerminalSettings, ...] = ()
    source: str = ""

    @property
    def state_dir(self) -> Path:
        return Path(self.appliance.state_dir)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "appliance.sqlite3"

    @property
    def key_path(self) -> Path:
        return self.state_dir / "keys" / "log-signing.pem"

    def cloud_key(self) -> VerifyKey:
        """The cloud's public witness key; raises ``ConfigError`` saying what to fix."""
        path = Path(self.mqtt.cloud_key_file)
        try:
            return VerifyKey.from_pem(path.read_bytes())
        except OSError as err:
            raise ConfigError(self.source, [f"mqtt.cloud_key_file: cannot read {path}: {err.strerror}"]) from err
        except Malformed as err:
            raise ConfigError(self.source, [f"mqtt.cloud_key_file: {path} is not the cloud's key: {err}"]) from err

    @property
    def log_origin(self) -> str:
        return self.appliance.log_origin or f"punchproof/{self.plant.id}/{self.appliance.id}/1"

    @classmethod
    def load(cls, path: Path | str) -> Settings:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(path, ["file not found; create it with 'punchproof appliance init'"]) from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(path, [f"not valid TOML: {err}"]) from err
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> Settings:
        problems: list[str] = []
        known = {"plant", "appliance", "mqtt", "web", "terminals"}
        problems += [f"[{key}]: unknown section" for key in data if key not in known]
        plant = _section(PlantSettings, data.get("plant"), "plant", problems)
        appliance = _section(ApplianceSettings, data.get("appliance"), "appliance", problems)
        mqtt = _section(MqttSettings, data.get("mqtt", {}), "mqtt", problems)
        web = _section(WebSettings, data.get("web", {}), "web", problems)
        raw_terminals = data.get("terminals", [])
        terminals = []
        if not isinstance(raw_terminals, list):
            problems.append("[[terminals]]: must be an array of tables")
            raw_terminals = []
        for index, raw in enumerate(raw_terminals):
            terminal = _section(TerminalSettings, raw, f"terminals[{index}]", problems)
            if terminal is not None:
                terminals.append(terminal)
        if plant is not None:
            if not SLUG.match(plant.id):
                problems.append("plant.id: use lower-case letters, digits and '-' (e.g. 'dongguan-1')")
            try:
                ZoneInfo(plant.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"plant.timezone: unknown time zone {plant.timezone!r} (e.g. 'Asia/Shanghai')")
        raw_mqtt = data.get("mqtt")
        if not (isinstance(raw_mqtt, dict) and raw_mqtt.get("cloud_key_file")):
            problems.append(
                "mqtt.cloud_key_file: required: the path of cloud-witness.pub, which 'punchproof cloud init' wrote"
            )
        if appliance is not None and not SLUG.match(appliance.id):
            problems.append("appliance.id: use lower-case letters, digits and '-' (e.g. 'pi-01')")
        names = [t.name for t in terminals]
        problems += [f"terminals: name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})]
        problems += [f"terminals.{t.name}.kind: only 'zk' is supported" for t in terminals if t.kind != "zk"]
        if problems or plant is None or appliance is None or mqtt is None or web is None:
            raise ConfigError(source, problems)
        return cls(plant, appliance, mqtt, web, tuple(terminals), source)

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by '***'."""
        return _mask(dataclasses.asdict(self))


def _section(kind: type, raw: Any, name: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"[{name}]: missing or not a table")
        return None
    fields = {f.name: f for f in dataclasses.fields(kind)}
    values, ok = {}, True
    for key, value in raw.items():
        spec = fields.get(key)
        if spec is None:
            problems.append(f"{name}.{key}: unknown key")
            ok = False
            continue
        expected = {"str": str, "int": int, "float": (int, float), "bool": bool}[str(spec.type)]
        if isinstance(value, bool) and spec.type != "bool" or not isinstance(value, expected):
            problems.append(f"{name}.{key}: expected {spec.type}, got {type(value).__name__}")
            ok = False
            continue
        values[key] = value
    missing = [k for k, f in fields.items() if f.default is dataclasses.MISSING and k not in raw]
    problems += [f"{name}.{key}: required" for key in missing]
    return kind(**values) if ok and not missing else None


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value
