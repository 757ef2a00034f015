"""The cloud's configuration: one TOML file, checked as a whole, secrets masked when shown.

In a container, ``PUNCHPROOF_CLOUD__<SECTION>__<KEY>`` overrides any key of the file
(``opskit.envconfig``), e.g. ``PUNCHPROOF_CLOUD__DATABASE__URL``; it is checked like the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cloud.channels.settings import ChannelSettings
from cloud.channels.settings import parse as parse_channels
from cloud.notices.settings import NoticeSettings
from cloud.notices.settings import parse as parse_notices
from opskit import envconfig


@dataclass(frozen=True)
class TsaAuthority:
    """One RFC 3161 timestamp authority: where to ask, and the root certificate its answers must chain to."""

    url: str
    ca_file: str  # [[tsa.authority]]: relative to the TOML file's folder, resolved when read


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class CloudSettings:
    database_url: str = "sqlite:////var/lib/punchproof/cloud.sqlite3"
    state_dir: str = "/var/lib/punchproof"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_password_file: str = ""  # a file holding only the password ('cloud broker-credentials' writes it)
    mqtt_tls: bool = False
    mqtt_ca_file: str = ""
    mqtt_shared: bool = False  # several ingest workers on one MQTT v5 shared subscription
    worker_id: str = "ingest-1"
    ingest_parse_processes: int = 0  # processes that parse batches ahead of the store; 0: one per core, at most 4
    web_bind: str = "0.0.0.0:8000"
    web_workers: int = 2
    # reverse proxies in front of the pages that add X-Forwarded-For / -Proto (docs/security.md): with 1, the
    # client address is the one the proxy gives (the login throttle, the notice links' read records) and the
    # session cookie is sent over HTTPS only; 0: the pages are reached directly
    web_trusted_proxies: int = 0
    timezone: str = "Asia/Shanghai"  # head office's zone, for times that belong to no plant
    # HR's changes to a plant reach its appliances this long after the latest one, or this long after the first
    config_push_quiet_s: int = 30
    config_push_within_s: int = 120
    # [tsa]: RFC 3161 timestamp authorities, the only time in a bundle that is not the employer's word
    # (docs/keys-and-timestamps.md). Each [[tsa.authority]] has url and ca_file; the older single
    # url / ca_file still work and count as the first. None: bundles carry no third-party time.
    tsa_url: str = ""
    tsa_ca_file: str = ""  # the TSA's root certificate (PEM), to check its answers
    tsa_timeout_s: int = 10
    tsa_authority: tuple[TsaAuthority, ...] = field(default=(), compare=False)
    witness_seal_every_s: int = 3600  # the witness log is sealed (and stamped) this often, and at every export
    report_font: str = ""  # [report] font: a Chinese font file for report.pdf; empty: cloud.report_font's defaults
    # [broker]: what 'register-appliance' writes for Mosquitto and tells the appliances (docs/broker-security.md)
    broker_host: str = ""  # the broker's name as appliances reach it, and as its TLS certificate says
    broker_port: int = 8883
    broker_tls: bool = True
    broker_ca_file: str = ""  # the CA certificate appliances check the broker with; empty: the Pi's system CAs
    broker_password_file: str = ""  # Mosquitto's password file of the appliances' listener
    broker_cloud_password_file: str = ""  # ... of the cloud workers' listener
    broker_acl_file: str = ""
    broker_reload_command: str = ""  # e.g. "systemctl reload mosquitto"; empty: say what to run
    # [channels.*] and [notices]: nested tables, parsed by cloud.channels.settings and cloud.notices.settings
    channels: ChannelSettings = field(default_factory=ChannelSettings, compare=False)
    notices: NoticeSettings | None = field(default=None, compare=False)
    source: str = field(default="", compare=False)
    # where each value came from, by field name, for show-config: ("mqtt_host", "env PUNCHPROOF_...") | "file"
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def secret_key_path(self) -> Path:
        return Path(self.state_dir) / "web-secret.key"

    @property
    def witness_key_path(self) -> Path:
        return Path(self.state_dir) / "keys" / "cloud-witness.pem"

    @property
    def witness_public_path(self) -> Path:
        return Path(self.state_dir) / "cloud-witness.pub"

    @property
    def evidence_key_path(self) -> Path:
        """The key that signs the cloud's own evidence log (contacts, receipts, people's actions on cases)."""
        return Path(self.state_dir) / "keys" / "cloud-evidence.pem"

    @property
    def evidence_public_path(self) -> Path:
        return Path(self.state_dir) / "cloud-evidence.pub"

    def __post_init__(self) -> None:
        """``tsa_authority`` as a tuple of ``TsaAuthority``, also when rebuilt from ``asdict`` (an export job's
        settings travel as JSON: a list of dicts)."""
        authorities = tuple(a if isinstance(a, TsaAuthority) else TsaAuthority(**a) for a in self.tsa_authority)
        object.__setattr__(self, "tsa_authority", authorities)

    @property
    def tsas(self) -> tuple[TsaAuthority, ...]:
        """Every configured timestamp authority: ``[tsa] url`` (the older single form) first, then each
        ``[[tsa.authority]]``; empty when none is configured."""
        single = (TsaAuthority(self.tsa_url, self.tsa_ca_file),) if self.tsa_url else ()
        return single + self.tsa_authority

    @classmethod
    def load(cls, path: Path | str, *, environ: Mapping[str, str] | None = None) -> CloudSettings:
        """The file, with ``PUNCHPROOF_CLOUD__*`` from ``environ`` (default: this process's) over it."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(str(path), ["file not found; create it with 'punchproof cloud init'"]) from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(str(path), [f"not valid TOML: {err}"]) from err
        origins = {
            _field_name(section, key): "file"
            for section, table in data.items()
            if isinstance(table, dict)
            for key in table
        }
        problems = _apply_environment(data, os.environ if environ is None else environ, origins)
        try:
            settings = cls.from_sections(data, source=str(path))
        except ConfigError as err:
            raise ConfigError(str(path), problems + err.problems) from err
        if problems:
            raise ConfigError(str(path), problems)
        if settings.mqtt_password_file:
            origins["mqtt_password"] = f"file {settings.mqtt_password_file}"
        return replace(settings, origins=tuple(sorted(origins.items()))).with_password_file()

    def with_password_file(self) -> CloudSettings:
        """Read ``[mqtt] password_file`` (relative to this file's folder) into ``mqtt_password``."""
        if not self.mqtt_password_file:
            return self
        if self.mqtt_password:
            raise ConfigError(self.source, ["mqtt: give password or password_file, not both"])
        path = Path(self.source).parent / self.mqtt_password_file
        try:
            password = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as err:
            raise ConfigError(self.source, [f"mqtt.password_file: cannot read {path}: {err.strerror}"]) from err
        return replace(self, mqtt_password=password)

    @classmethod
    def from_sections(cls, data: dict[str, Any], *, source: str = "<dict>") -> CloudSettings:
        """Read ``[database] url``, ``[mqtt] host`` ... into the flat ``database_url``, ``mqtt_host`` ..."""
        spec = {f.name: f.type for f in fields(cls) if f.name not in ("source", "channels", "notices", "tsa_authority")}
        python = {"str": str, "int": int, "bool": bool}
        values: dict[str, Any] = {}
        problems: list[str] = []
        folder = Path(source).parent
        data = dict(data)
        if "channels" in data:
            values["channels"], found = parse_channels(data.pop("channels"), folder)
            problems += found
        if "notices" in data:
            values["notices"], found = parse_notices(data.pop("notices"))
            problems += found
        if isinstance(data.get("tsa"), dict) and "authority" in data["tsa"]:
            data["tsa"] = dict(data["tsa"])
            values["tsa_authority"], found = _parse_authorities(data["tsa"].pop("authority"), folder)
            problems += found
        for section, table in data.items():
            if not isinstance(table, dict):
                problems.append(f"[{section}]: must be a table")
                continue
            for key, value in table.items():
                name = _field_name(section, key)
                kind = spec.get(name)
                if kind is None:
                    problems.append(f"{section}.{key}: unknown key")
                elif not isinstance(value, python[str(kind)]) or isinstance(value, bool) != (kind == "bool"):
                    problems.append(f"{section}.{key}: expected {kind}, got {type(value).__name__}")
                else:
                    values[name] = value
        url = values.get("database_url", cls.database_url)
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            problems.append("database.url: use sqlite:////path/file.sqlite3 or postgresql://user@host/db")
        if not 0 <= values.get("web_trusted_proxies", 0) <= 5:
            problems.append("web.trusted_proxies: how many reverse proxies are in front of the pages, 0 to 5")
        if problems:
            raise ConfigError(source, problems)
        return cls(**values, source=source)

    def shown(self) -> list[tuple[str, Any, str]]:
        """Every key as ``section.key``, masked, with where its value came from: file, env VARIABLE, default."""
        masked, origins = self.masked(), dict(self.origins)
        return [
            (_toml_key(name), value, origins.get(name, envconfig.DEFAULT))
            for name, value in masked.items()
            if name not in ("source", "origins")
        ]

    def masked(self) -> dict[str, Any]:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "origins"}
        shown["channels"] = self.channels.masked()
        shown["notices"] = vars(self.notices) if self.notices else None
        shown["tsa_authority"] = [vars(a) for a in self.tsa_authority]
        if self.mqtt_password:
            shown["mqtt_password"] = "***"
        if "@" in self.database_url and ":" in self.database_url.split("@")[0].split("//")[-1]:
            scheme, rest = self.database_url.split("//", 1)
            user = rest.split("@")[0].split(":")[0]
            shown["database_url"] = f"{scheme}//{user}:***@{rest.split('@', 1)[1]}"
        return shown


def _parse_authorities(value: Any, folder: Path) -> tuple[tuple[TsaAuthority, ...], list[str]]:
    """``[[tsa.authority]]``: a list of tables, each with a non-empty ``url`` and ``ca_file`` (a relative
    ``ca_file`` is read from the TOML file's folder)."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return (), ["tsa.authority: write each authority as a [[tsa.authority]] table with url and ca_file"]
    found, problems = [], []
    for number, item in enumerate(value, 1):
        where = f"tsa.authority #{number}"
        unknown = [key for key in item if key not in ("url", "ca_file")]
        problems += [f"{where}.{key}: unknown key (use url and ca_file)" for key in unknown]
        url, ca_file = item.get("url"), item.get("ca_file")
        if not isinstance(url, str) or not url:
            problems.append(f'{where}.url: the TSA\'s RFC 3161 address is required, e.g. "https://freetsa.org/tsr"')
        if not isinstance(ca_file, str) or not ca_file:
            problems.append(f"{where}.ca_file: the TSA's root certificate (PEM) file is required")
        if isinstance(url, str) and url and isinstance(ca_file, str) and ca_file:
            found.append(TsaAuthority(url, str(folder / ca_file)))
    return tuple(found), problems


SECTIONS = ("database", "mqtt", "web", "report", "broker", "tsa")  # [cloud] holds the rest


def _field_name(section: str, key: str) -> str:
    """``[mqtt] host`` is the field ``mqtt_host``; ``[cloud] worker_id`` is ``worker_id``."""
    return f"{section}_{key}" if section != "cloud" else key


def _toml_key(name: str) -> str:
    section, _, key = name.partition("_")
    return f"{section}.{key}" if section in SECTIONS else f"cloud.{name}"


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str], origins: dict[str, str]) -> list[str]:
    """Put each ``PUNCHPROOF_CLOUD__*`` value into ``data``, typed as the file's key; return the problems."""
    skipped = ("source", "origins", "tsa_authority")  # a list of tables has no environment form
    types = {f.name: str(f.type) for f in fields(CloudSettings) if f.name not in skipped}
    problems = []
    for override in envconfig.overrides(environ, "cloud"):
        name = _field_name(*override.path) if len(override.path) == 2 else ""
        if name not in types:
            problems.append(
                f"{override.variable}: not a setting; use PUNCHPROOF_CLOUD__<SECTION>__<KEY> with a key of "
                f"[cloud] or [{'], ['.join(SECTIONS)}]"
            )
            continue
        table = data.setdefault(override.path[0], {})
        if not isinstance(table, dict):
            problems.append(f"{override.variable}: [{override.path[0]}] in the file is not a table")
            continue
        try:
            table[override.path[1]] = envconfig.convert(override, types[name])
        except ValueError as err:
            problems.append(str(err))
            continue
        origins[name] = override.origin
    return problems
