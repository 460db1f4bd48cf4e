"""Server configuration: defaults, YAML file, command-line overrides."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET, parse_keys

__all__ = ["ServerConfig"]


@dataclasses.dataclass
class ServerConfig:
    """Everything ``kitewire serve`` can be told.

    ``port=0`` picks a free port (see ``Server.url``). ``loopback_only=None``
    means: gather ICE candidates on 127.0.0.1 only when ``bind`` is a loopback
    address. ``empty_timeout`` is how long (seconds) a room outlives its last
    participant.

    HTTP limits: ``http_header_timeout`` is how long (seconds) a new connection
    may take to send its first request's headers; ``http_idle_timeout`` how long
    a keep-alive connection may sit between requests; ``max_connections`` and
    ``max_connections_per_address`` cap open HTTP/WebSocket connections (each
    participant holds one; a load test from one host opens hundreds, and so does
    an office behind one NAT address).
    """

    bind: str = "127.0.0.1"
    port: int = 7880
    keys: dict[str, str] = dataclasses.field(default_factory=dict)
    empty_timeout: float = 20.0
    ping_interval: int = 5
    ping_timeout: int = 15
    loopback_only: bool | None = None
    log_level: str = "info"
    #: Seconds a participant's PeerConnection may take to connect before it is removed.
    ice_connect_timeout: float = 30.0
    http_header_timeout: float = 10.0
    http_idle_timeout: float = 15.0
    max_connections: int = 4096
    max_connections_per_address: int = 512

    @classmethod
    def dev(cls, **overrides: Any) -> ServerConfig:
        """``--dev`` settings: API key ``devkey`` with secret ``secret``."""
        config = cls(keys={DEV_API_KEY: DEV_API_SECRET})
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"ServerConfig: expected one of {sorted(known)}, got {name!r}")
            setattr(config, name, value)
        return config

    @property
    def ice_loopback_only(self) -> bool:
        """Whether server PeerConnections gather on 127.0.0.1 only."""
        if self.loopback_only is not None:
            return self.loopback_only
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return self.bind == "localhost"

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {self.port}")
        if not self.keys:
            raise ValueError("keys: expected at least one API key (use --dev or --keys 'key: secret')")
        if self.ping_interval <= 0 or self.ping_timeout <= self.ping_interval:
            raise ValueError(
                f"ping: expected 0 < ping_interval < ping_timeout, got {self.ping_interval} and {self.ping_timeout}"
            )
        if self.empty_timeout < 0:
            raise ValueError(f"empty_timeout: expected >= 0 seconds, got {self.empty_timeout}")
        for name in ("http_header_timeout", "http_idle_timeout"):
            seconds = getattr(self, name)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ValueError(f"{name}: expected a number of seconds > 0, got {seconds!r}")
        for name in ("max_connections", "max_connections_per_address"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {count!r}")

    def apply_mapping(self, data: Mapping[str, Any]) -> None:
        """Apply settings from a livekit.yaml-like mapping.

        Understood keys: ``port``, ``bind_addresses`` (first one used) or
        ``bind``, ``keys`` (mapping or "key: secret" text), ``log_level`` or
        ``logging.level``, ``room.empty_timeout``, ``rtc.loopback_only``,
        ``ping_interval``, ``ping_timeout``, ``http.header_timeout``,
        ``http.idle_timeout``, ``http.max_connections``,
        ``http.max_connections_per_address``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"config: expected a mapping at the top level, got {type(data).__name__}")
        if "port" in data:
            self.port = _int(data["port"], "port")
        if "bind_addresses" in data:
            addresses = data["bind_addresses"]
            if not isinstance(addresses, list) or not addresses or not isinstance(addresses[0], str):
                raise ValueError(f"bind_addresses: expected a list of addresses, got {addresses!r}")
            self.bind = addresses[0]
        if "bind" in data:
            if not isinstance(data["bind"], str):
                raise ValueError(f"bind: expected an address, got {data['bind']!r}")
            self.bind = data["bind"]
        if "keys" in data:
            keys = data["keys"]
            if isinstance(keys, str):
                self.keys = parse_keys(keys)
            elif isinstance(keys, Mapping) and keys:
                self.keys = {str(k): str(v) for k, v in keys.items()}
            else:
                raise ValueError(f"keys: expected a mapping of key: secret, got {keys!r}")
        level = data.get("log_level")
        logging_section = data.get("logging")
        if isinstance(logging_section, Mapping) and "level" in logging_section:
            level = logging_section["level"]
        if level is not None:
            self.log_level = str(level)
        room = data.get("room")
        if isinstance(room, Mapping) and "empty_timeout" in room:
            self.empty_timeout = float(_int(room["empty_timeout"], "room.empty_timeout"))
        rtc = data.get("rtc")
        if isinstance(rtc, Mapping) and "loopback_only" in rtc:
            self.loopback_only = bool(rtc["loopback_only"])
        if "ping_interval" in data:
            self.ping_interval = _int(data["ping_interval"], "ping_interval")
        if "ping_timeout" in data:
            self.ping_timeout = _int(data["ping_timeout"], "ping_timeout")
        http = data.get("http")
        if http is not None:
            if not isinstance(http, Mapping):
                raise ValueError(f"http: expected a mapping, got {http!r}")
            for key in ("header_timeout", "idle_timeout"):
                if key in http:
                    setattr(self, f"http_{key}", _seconds(http[key], f"http.{key}"))
            for key in ("max_connections", "max_connections_per_address"):
                if key in http:
                    setattr(self, key, _int(http[key], f"http.{key}"))

    def load_yaml(self, path: str | Path) -> None:
        """Apply a YAML config file."""
        import yaml

        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: expected YAML, got a parse error: {exc}") from None
        self.apply_mapping(data)


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}") from None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {value!r}") from None
