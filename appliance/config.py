"""The appliance's configuration: one TOML file, validated as a whole.

Every bad key is reported at once, with the reason, so an installer fixes the file in one go.
Secrets are masked whenever the settings are shown. In a container, ``PUNCHPROOF_APPLIANCE__<SECTION>__<KEY>``
overrides any key of the file (``opskit.envconfig``), checked like the file.
"""

from __future__ import annotations

import codecs
import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.idmap import IdMapError, load_cards, load_pages
from firmware_bridge.readers.cards import card_format
from firmware_bridge.zk.clock import ClockPolicy
from opskit import envconfig

if TYPE_CHECKING:
    # imported where used: a push receiver loads the HTTP receiver (Flask), some 10 MB; ledger loads the
    # cryptography package, some 5 MB, which the pages' worker need not hold
    from firmware_bridge.adms.connections import Limits
    from ledger import VerifyKey

T = TypeVar("T")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SECRET_KEYS = {"password", "comm_key"}
MIN_CLOCK_CORRECT_S = 2.0  # the protocol sets whole seconds: below this, every poll would "correct" it
MIN_REMOVAL_HOLD = 3  # [enrolment] removal_hold_min: ordinary daily leavers (1-3) are never held


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
    password_file: str = ""  # a file (mode 0600) holding only the password; 'appliance join' writes it
    tls: bool = False
    ca_file: str = ""  # the CA certificate the broker's is checked against; empty: the system's CAs
    batch_records: int = 256  # = records per checkpoint, so that batches end at checkpoints
    inflight: int = 32  # batches awaiting the cloud's ack: more than the cloud stores in one transaction
    ack_timeout_s: float = 10.0
    keepalive_s: int = 30
    cloud_key_file: str = ""  # cloud-witness.pub from head office: acknowledgements must be signed by it


@dataclass(frozen=True)
class WebSettings:
    bind: str = "0.0.0.0:8080"
    workers: int = 1  # gthread: one process serves every page and stream on threads; each more costs ~85 MB


@dataclass(frozen=True)
class TerminalSettings:
    name: str
    host: str
    kind: str = "zk"
    port: int = 4370
    comm_key: int = 0
    poll_seconds: float = 5.0  # the full read that proves nothing was missed (and catches up after a drop)
    live_poll_seconds: float = 60.0  # the same read while live capture runs (each punch arrives within 1 s)
    timeout_s: float = 5.0
    encoding: str = "gbk"
    live: bool = True  # also take each punch as the terminal announces it (within a second)
    udp: bool = False  # some older terminals speak UDP only
    clock_alarm_s: float = 60.0  # the terminal's clock this far off ours: a signed clock_alarm incident
    clock_correct_above_s: float | None = None  # set the terminal's clock when this far off; absent: never

    @property
    def clock_policy(self) -> ClockPolicy:
        correct = self.clock_correct_above_s
        return ClockPolicy(round(self.clock_alarm_s * 1000), None if correct is None else round(correct * 1000))


@dataclass(frozen=True)
class AdmsTerminalSettings:
    """A terminal that pushes to us (ADMS / iclock): known only by the serial number it sends."""

    name: str
    serial: str
    kind: str = "adms"
    encoding: str = "gb18030"  # Chinese firmware; a superset of GBK


@dataclass(frozen=True)
class CardReaderSettings:
    """A card or Wiegand-to-RS232 reader on a serial port (``serial_for_url``: a tty or socket://)."""

    name: str
    url: str
    cards_file: str  # CSV: card, employee (appliance.idmap); relative to this file's folder
    kind: str = "card"
    baudrate: int = 9600
    card_format: str = "decimal"  # firmware_bridge.readers.cards: a named format or regex:<pattern>
    repeat_seconds: float = 3.0  # a card held at the reader repeats: one punch per this window


@dataclass(frozen=True)
class R30xReaderSettings:
    """An R30x / AS608 fingerprint module on a serial port: it answers a page, the table says whose."""

    name: str
    url: str
    pages_file: str  # CSV: page, employee (appliance.idmap); relative to this file's folder
    kind: str = "r30x"
    baudrate: int = 57600
    password: int = 0
    address: int = 0xFFFFFFFF


AnyTerminalSettings = TerminalSettings | AdmsTerminalSettings | CardReaderSettings | R30xReaderSettings
TERMINAL_KINDS: dict[str, type] = {
    "zk": TerminalSettings,
    "adms": AdmsTerminalSettings,
    "card": CardReaderSettings,
    "r30x": R30xReaderSettings,
}


@dataclass(frozen=True)
class PushSettings:
    """Where push (ADMS) terminals reach the appliance: one address of the plant-LAN interface.

    Terminals identify themselves by serial number only, so the receiver must not be reachable
    from any other network: a specific address is required, never 0.0.0.0."""

    host: str = ""
    port: int = 8081
    offline_after_s: float = 60.0  # no request from a terminal for this long: shown offline
    # what the receiver lets anyone on the LAN take from the daemon (firmware_bridge.adms.connections.Limits)
    max_connections: int = 64  # open at once, silent ones included: a plant has tens of terminals
    idle_seconds: float = 10.0  # connected and silent: a terminal sends its request at once
    request_seconds: float = 20.0  # from a request's first byte to its last
    max_body_mb: int = 16  # a terminal's largest batch (OPERLOG with photos) is far below this

    def limits(self) -> Limits:
        from firmware_bridge.adms.connections import Limits

        return Limits(
            max_connections=self.max_connections,
            idle_s=self.idle_seconds,
            request_s=self.request_seconds,
            max_body_bytes=self.max_body_mb * 1024 * 1024,
        )


@dataclass(frozen=True)
class EnrolmentSettings:
    """[enrolment]: the brake on removing workers from the ZK terminals (docs/enrolment.md). A roster that makes
    more of its workers leave at once than max(``removal_hold_min``, ``removal_hold_percent`` % of the workers on
    it before) removes none of them until a person confirms (``punchproof appliance confirm-removals``)."""

    removal_hold_min: int = 5  # never held at this many leavers or fewer: a day's leavers (1-3) pass
    removal_hold_percent: float = 10.0

    def problems(self) -> list[str]:
        problems = []
        if self.removal_hold_min < MIN_REMOVAL_HOLD:
            problems.append(
                f"enrolment.removal_hold_min: at least {MIN_REMOVAL_HOLD} (a day's leavers must pass), "
                f"got {self.removal_hold_min}"
            )
        if not 0 < self.removal_hold_percent <= 100:
            problems.append(
                f"enrolment.removal_hold_percent: a percentage above 0 and at most 100, got {self.removal_hold_percent}"
            )
        return problems


@dataclass(frozen=True)
class Settings:
    plant: PlantSettings
    appliance: ApplianceSettings
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    web: WebSettings = field(default_factory=WebSettings)
    terminals: tuple[AnyTerminalSettings, ...] = ()
    source: str = ""
    push: PushSettings = field(default_factory=PushSettings)
    enrolment: EnrolmentSettings = field(default_factory=EnrolmentSettings)
    # where each key's value came from, for show-config: ("mqtt.host", "env PUNCHPROOF_...") | "file"
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def terminals_of(self, kind: type[T]) -> list[T]:
        return [t for t in self.terminals if isinstance(t, kind)]

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
        from ledger import Malformed, VerifyKey

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
    def load(cls, path: Path | str, *, environ: Mapping[str, str] | None = None) -> Settings:
        """The file, with ``PUNCHPROOF_APPLIANCE__*`` from ``environ`` (default: this process's) over it."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(path, ["file not found; create it with 'punchproof appliance init'"]) from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(path, [f"not valid TOML: {err}"]) from err
        origins = {key: "file" for key in _leaves(data)}
        problems = _apply_environment(data, os.environ if environ is None else environ, origins)
        try:
            settings = cls.from_dict(data, source=str(path))
        except ConfigError as err:
            raise ConfigError(path, problems + err.problems) from err
        if problems:
            raise ConfigError(path, problems)
        if settings.mqtt.password_file:
            origins["mqtt.password"] = f"file {settings.mqtt.password_file}"
        return dataclasses.replace(settings, origins=tuple(sorted(origins.items()))).with_password_file()

    def with_password_file(self) -> Settings:
        """Read ``[mqtt] password_file`` (relative to this file's folder) into ``mqtt.password``."""
        if not self.mqtt.password_file:
            return self
        if self.mqtt.password:
            raise ConfigError(self.source, ["mqtt: give password or password_file, not both"])
        path = Path(self.source).parent / self.mqtt.password_file
        try:
            password = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as err:
            raise ConfigError(self.source, [f"mqtt.password_file: cannot read {path}: {err.strerror}"]) from err
        return dataclasses.replace(self, mqtt=dataclasses.replace(self.mqtt, password=password))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> Settings:
        problems: list[str] = []
        known = {"plant", "appliance", "mqtt", "web", "terminals", "push", "enrolment"}
        problems += [f"[{key}]: unknown section" for key in data if key not in known]
        plant = _section(PlantSettings, data.get("plant"), "plant", problems)
        appliance = _section(ApplianceSettings, data.get("appliance"), "appliance", problems)
        mqtt = _section(MqttSettings, data.get("mqtt", {}), "mqtt", problems)
        web = _section(WebSettings, data.get("web", {}), "web", problems)
        push = _section(PushSettings, data.get("push", {}), "push", problems)
        enrolment = _section(EnrolmentSettings, data.get("enrolment", {}), "enrolment", problems)
        if enrolment is not None:
            problems += enrolment.problems()
        raw_terminals = data.get("terminals", [])
        terminals = []
        if not isinstance(raw_terminals, list):
            problems.append("[[terminals]]: must be an array of tables")
            raw_terminals = []
        base = Path(source).parent if source != "<dict>" else Path()
        for index, raw in enumerate(raw_terminals):
            terminal = terminal_settings(raw, f"terminals[{index}]", base, problems)
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
        names = [t.get("name") for t in raw_terminals if isinstance(t, dict) and isinstance(t.get("name"), str)]
        problems += check_terminals(terminals, push, names)
        if problems or None in (plant, appliance, mqtt, web, push, enrolment):
            raise ConfigError(source, problems)
        return cls(plant, appliance, mqtt, web, tuple(terminals), source, push, enrolment)

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by '***'."""
        shown = _mask(dataclasses.asdict(self))
        del shown["origins"]
        return shown

    def shown(self) -> list[tuple[str, Any, str]]:
        """Every key, masked, with where its value came from: file, env VARIABLE, or default."""
        masked = self.masked()
        del masked["source"]
        origins = dict(self.origins)
        return [(key, value, origins.get(key, envconfig.DEFAULT)) for key, value in _leaves(masked).items()]


def terminal_settings(raw: Any, name: str, base: Path, problems: list[str]) -> AnyTerminalSettings | None:
    """One ``[[terminals]]`` table, by its ``kind``; a key of another kind is named as such."""
    if not isinstance(raw, dict):
        problems.append(f"[{name}]: not a table")
        return None
    kind = raw.get("kind", "zk")
    settings_type = TERMINAL_KINDS.get(kind) if isinstance(kind, str) else None
    if settings_type is None:
        problems.append(f"{name}.kind: {kind!r} is not supported; use one of {', '.join(TERMINAL_KINDS)}")
        return None
    label = f"{name} ({raw['name']})" if isinstance(raw.get("name"), str) else name
    own = {f.name for f in dataclasses.fields(settings_type)}
    for key in raw:
        if key not in own and _any_kind_has(key):
            problems.append(f"{label}.{key}: not a setting of a {kind!r} terminal (it takes: {', '.join(sorted(own))})")
    terminal = _section(
        settings_type, {k: v for k, v in raw.items() if k in own or not _any_kind_has(k)}, name, problems
    )
    if terminal is None:
        return None
    if isinstance(terminal, TerminalSettings):
        problems += _encoding_problems(terminal.encoding, f"{label}.encoding")
        problems += _clock_problems(terminal, label)
    elif isinstance(terminal, AdmsTerminalSettings):
        if not ADMS_SERIAL.match(terminal.serial):
            problems.append(
                f"{label}.serial: {terminal.serial!r} is not a terminal serial number (letters, digits, '-')"
            )
        problems += _encoding_problems(terminal.encoding, f"{label}.encoding")
    elif isinstance(terminal, CardReaderSettings | R30xReaderSettings):
        if not terminal.url.strip():
            problems.append(f"{label}.url: required: a serial port (/dev/ttyUSB0) or socket://host:port")
        if terminal.baudrate <= 0:
            problems.append(f"{label}.baudrate: must be positive")
        if isinstance(terminal, CardReaderSettings):
            try:
                card_format(terminal.card_format)
            except ValueError as err:
                problems.append(f"{label}.card_format: {err}")
            if terminal.repeat_seconds < 0:
                problems.append(f"{label}.repeat_seconds: must not be negative")
            path = base / terminal.cards_file
            _table_problems(load_cards, path, f"{label}.cards_file", problems)
            return dataclasses.replace(terminal, cards_file=str(path.resolve()))
        for key in ("password", "address"):
            if not 0 <= getattr(terminal, key) <= 0xFFFFFFFF:
                problems.append(f"{label}.{key}: must be a 32-bit unsigned number")
        path = base / terminal.pages_file
        _table_problems(load_pages, path, f"{label}.pages_file", problems)
        return dataclasses.replace(terminal, pages_file=str(path.resolve()))
    return terminal


def check_terminals(terminals: list[AnyTerminalSettings], push: PushSettings | None, names: list[str]) -> list[str]:
    """What is wrong across the terminals: names, serials or ports used twice; the push address.

    ``names`` are those of every table, valid or not, so a clash is reported with the other problems."""
    problems = []
    for what, values in (
        ("name", names),
        ("serial", [t.serial for t in terminals if isinstance(t, AdmsTerminalSettings)]),
        ("url", [t.url for t in terminals if isinstance(t, CardReaderSettings | R30xReaderSettings)]),
    ):
        problems += [
            f"terminals: {what} {v!r} is used twice" for v in sorted({v for v in values if values.count(v) > 1})
        ]
    if push is None or not any(isinstance(t, AdmsTerminalSettings) for t in terminals):
        return problems
    if not push.host.strip():
        problems.append(
            "push.host: required with an 'adms' terminal: the appliance's address on the plant LAN "
            "(e.g. 192.168.10.2) / 推送考勤机需要填写本机在工厂局域网的地址"
        )
    else:
        try:
            address = ipaddress.ip_address(push.host.strip("[]"))
        except ValueError:
            problems.append(f"push.host: {push.host!r} is not an IP address of this appliance's plant-LAN interface")
        else:
            if address.is_unspecified:
                problems.append(
                    f"push.host: {push.host!r} would accept pushes from every network; terminals are trusted by serial "
                    "number alone, so give the plant-LAN interface's own address (e.g. 192.168.10.2) / "
                    "不能监听所有网卡，请填写工厂局域网网卡的地址"
                )
    if not 0 < push.port < 65536:
        problems.append(f"push.port: {push.port} is not a TCP port")
    if push.offline_after_s <= 0:
        problems.append("push.offline_after_s: must be positive")
    if not 1 <= push.max_connections <= 4096:
        problems.append("push.max_connections: from 1 to 4096 (a plant has tens of terminals)")
    if not 0 < push.idle_seconds <= 600 or not 0 < push.request_seconds <= 600:
        problems.append("push.idle_seconds and push.request_seconds: more than 0 and at most 600")
    if not 1 <= push.max_body_mb <= 256:
        problems.append("push.max_body_mb: from 1 to 256")
    return problems


ADMS_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def _any_kind_has(key: str) -> bool:
    return any(key in {f.name for f in dataclasses.fields(t)} for t in TERMINAL_KINDS.values())


def _clock_problems(terminal: TerminalSettings, label: str) -> list[str]:
    problems = [
        f"{label}.{key}: must be positive (seconds between full reads of the terminal's log)"
        for key in ("poll_seconds", "live_poll_seconds")
        if getattr(terminal, key) <= 0
    ]
    if terminal.clock_alarm_s <= 0:
        problems.append(f"{label}.clock_alarm_s: must be positive (seconds; e.g. 60)")
    correct = terminal.clock_correct_above_s
    if correct is not None and correct < MIN_CLOCK_CORRECT_S:
        problems.append(
            f"{label}.clock_correct_above_s: at least {MIN_CLOCK_CORRECT_S:g} s (the terminal's clock has whole "
            "seconds); leave it out to never set the terminal's clock / 终端时钟只精确到秒，不校时请删除此项"
        )
    return problems


def _encoding_problems(encoding: str, name: str) -> list[str]:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return [f"{name}: unknown text encoding {encoding!r} (e.g. 'gb18030', 'gbk', 'utf-8')"]
    return []


def _table_problems(load: Callable[[Path], object], path: Path, name: str, problems: list[str]) -> None:
    try:
        load(path)
    except IdMapError as err:
        problems += [f"{name}: {path}: {problem}" for problem in err.problems]


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
        expected = {"str": str, "int": int, "float": (int, float), "float | None": (int, float), "bool": bool}[
            str(spec.type)
        ]
        if isinstance(value, bool) and spec.type != "bool" or not isinstance(value, expected):
            problems.append(
                f"{name}.{key}: expected {str(spec.type).removesuffix(' | None')}, got {type(value).__name__}"
            )
            ok = False
            continue
        values[key] = value
    missing = [k for k, f in fields.items() if f.default is dataclasses.MISSING and k not in raw]
    problems += [f"{name}.{key}: required" for key in missing]
    return kind(**values) if ok and not missing else None


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"mqtt": {"host": h}, "terminals": [{...}]}`` as ``{"mqtt.host": h, "terminals.0.name": ...}``."""
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list | tuple) and all(isinstance(v, dict) for v in data):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: data}
    leaves: dict[str, Any] = {}
    for key, value in items:
        leaves.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


TABLES: dict[str, type] = {
    "plant": PlantSettings,
    "appliance": ApplianceSettings,
    "mqtt": MqttSettings,
    "web": WebSettings,
    "push": PushSettings,
    "enrolment": EnrolmentSettings,
}


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str], origins: dict[str, str]) -> list[str]:
    """Put each ``PUNCHPROOF_APPLIANCE__*`` value into ``data``, typed as the file's key; return the problems."""
    problems = []
    for override in envconfig.overrides(environ, "appliance"):
        path = override.path
        if len(path) == 2 and path[0] in TABLES:
            table = data.setdefault(path[0], {})
            kind = TABLES[path[0]]
        elif len(path) == 3 and path[0] == "terminals" and path[1].isdigit():
            terminals = data.get("terminals")
            index = int(path[1])
            if not isinstance(terminals, list) or index >= len(terminals) or not isinstance(terminals[index], dict):
                problems.append(f"{override.variable}: the file has no [[terminals]] number {index} (counted from 0)")
                continue
            table = terminals[index]
            kind = TERMINAL_KINDS.get(str(table.get("kind", "zk")), TerminalSettings)
        else:
            problems.append(
                f"{override.variable}: not a setting; use PUNCHPROOF_APPLIANCE__<SECTION>__<KEY> "
                f"(sections: {', '.join(TABLES)}) or PUNCHPROOF_APPLIANCE__TERMINALS__<N>__<KEY>"
            )
            continue
        if not isinstance(table, dict):
            problems.append(f"{override.variable}: [{path[0]}] in the file is not a table")
            continue
        types = {f.name: str(f.type) for f in dataclasses.fields(kind)}
        if path[-1] not in types:
            problems.append(f"{override.variable}: {override.dotted} is not a setting ({', '.join(sorted(types))})")
            continue
        try:
            table[path[-1]] = envconfig.convert(override, types[path[-1]])
        except ValueError as err:
            problems.append(str(err))
            continue
        origins[override.dotted] = override.origin
    return problems


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value
