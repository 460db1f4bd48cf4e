"""Server configuration: defaults, YAML file (read strictly), command-line overrides."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET

from .config_file import (
    ConfigReader,
    as_bool,
    as_int,
    as_keys,
    as_port,
    as_seconds,
    as_str,
    as_str_list,
)
from .webhooks import WebhookSettings, settings_from

__all__ = ["ServerConfig"]


@dataclasses.dataclass
class ServerConfig:
    """Everything ``kitewire serve`` can be told.

    ``port=0`` picks a free port (see ``Server.url``). ``loopback_only=None``
    means: gather ICE candidates on 127.0.0.1 only when ``bind`` is a loopback
    address. ``empty_timeout`` is how long (seconds) a room stays open before
    anyone joins, and after its last participant unless ``departure_timeout``
    (livekit's ``room.departure_timeout``) says otherwise; ``max_participants``
    (0: no limit) is every room's cap unless the server API or a token's
    roomConfig sets one.

    HTTP limits: ``http_header_timeout`` is how long (seconds) a new connection
    may take to send its first request's headers; ``http_idle_timeout`` how long
    a keep-alive connection may sit between requests; ``max_connections`` and
    ``max_connections_per_address`` cap open HTTP/WebSocket connections (each
    participant holds one; a load test from one host opens hundreds, and so does
    an office behind one NAT address).
    """

    #: Addresses the HTTP port listens on (``bind`` is the first).
    bind_addresses: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1"])
    port: int = 7880
    keys: dict[str, str] = dataclasses.field(default_factory=dict)
    empty_timeout: float = 20.0
    departure_timeout: float | None = None
    max_participants: int = 0
    #: Put a publisher's tracks of one stream (camera + microphone, screen + its audio) in one
    #: a=msid stream at subscribers, so libwebrtc lip-syncs them (livekit's room.sync_streams;
    #: on by default here: kitewire never reuses a subscriber m-line, the reason livekit leaves it off).
    sync_streams: bool = True
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
    #: ICE UDP ports of server PeerConnections come from this range (0, 0: any port).
    port_range_start: int = 0
    port_range_end: int = 0
    #: One UDP port every server PeerConnection shares, demultiplexed by ICE ufrag (0: off).
    udp_port: int = 0
    #: ``webhook.urls`` and the ``webhook.api_key`` signing them.
    webhook_urls: list[str] = dataclasses.field(default_factory=list)
    webhook_api_key: str = ""
    #: livekit-server's ``development`` / ``--dev``: devkey/secret when no keys are given, debug logging.
    development: bool = False
    #: Whether a config named the log level (``development`` then leaves it alone, as livekit-server does).
    log_level_given: bool = False

    @classmethod
    def dev(cls, **overrides: Any) -> ServerConfig:
        """``--dev`` settings: API key ``devkey`` with secret ``secret``."""
        config = cls(keys={DEV_API_KEY: DEV_API_SECRET})
        known = {f.name for f in dataclasses.fields(cls)} | {"bind"}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"ServerConfig: expected one of {sorted(known)}, got {name!r}")
            setattr(config, name, value)
        return config

    @property
    def bind(self) -> str:
        """The first listening address (the one ``Server.url`` names)."""
        return self.bind_addresses[0]

    @bind.setter
    def bind(self, address: str) -> None:
        self.bind_addresses = [address]

    @property
    def port_range(self) -> tuple[int, int] | None:
        """``(start, end)`` of the ICE port range, or None for any port."""
        if self.port_range_start == 0 and self.port_range_end == 0:
            return None
        return self.port_range_start, self.port_range_end

    def webhook_settings(self) -> WebhookSettings | None:
        """The webhook destinations, or None when none are configured."""
        if not self.webhook_urls:
            return None
        return settings_from(self.webhook_urls, self.webhook_api_key, self.keys)

    @property
    def ice_loopback_only(self) -> bool:
        """Whether server PeerConnections gather on 127.0.0.1 only."""
        if self.loopback_only is not None:
            return self.loopback_only
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return self.bind == "localhost"

    def apply_development(self) -> None:
        """What ``development`` means, as in livekit-server: the dev key when no keys were given, debug logs."""
        if self.development:
            if not self.keys:
                self.keys = {DEV_API_KEY: DEV_API_SECRET}
            if not self.log_level_given:
                self.log_level = "debug"

    def validate(self) -> None:
        """Raise ValueError on settings that cannot work."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {self.port}")
        if not self.bind_addresses or not all(isinstance(a, str) and a for a in self.bind_addresses):
            raise ValueError(f"bind_addresses: expected at least one address, got {self.bind_addresses!r}")
        start, end = self.port_range_start, self.port_range_end
        if (start, end) != (0, 0) and not 1 <= start <= end <= 65535:
            raise ValueError(f"rtc.port_range_start/end: expected 1 <= start <= end <= 65535, got {start} and {end}")
        if not 0 <= self.udp_port <= 65535:
            raise ValueError(f"rtc.udp_port: expected a port 0..65535, got {self.udp_port}")
        if not self.keys:
            raise ValueError("keys: expected at least one API key (use --dev or --keys 'key: secret')")
        if self.ping_interval <= 0 or self.ping_timeout <= self.ping_interval:
            raise ValueError(
                f"ping: expected 0 < ping_interval < ping_timeout, got {self.ping_interval} and {self.ping_timeout}"
            )
        if self.empty_timeout < 0:
            raise ValueError(f"empty_timeout: expected >= 0 seconds, got {self.empty_timeout}")
        if self.departure_timeout is not None and self.departure_timeout < 0:
            raise ValueError(f"departure_timeout: expected >= 0 seconds, got {self.departure_timeout}")
        if not isinstance(self.max_participants, int) or self.max_participants < 0:
            raise ValueError(f"max_participants: expected an integer >= 0 (0: no limit), got {self.max_participants!r}")
        for name in ("http_header_timeout", "http_idle_timeout"):
            seconds = getattr(self, name)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ValueError(f"{name}: expected a number of seconds > 0, got {seconds!r}")
        for name in ("max_connections", "max_connections_per_address"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {count!r}")
        if self.webhook_urls or self.webhook_api_key:
            if not self.webhook_urls:
                raise ValueError("webhook.urls: expected at least one URL when webhook.api_key is set")
            self.webhook_settings()

    def apply_mapping(self, data: Mapping[str, Any]) -> list[str]:
        """Apply settings from a livekit.yaml-like mapping; return warnings for ignored keys.

        Implemented: ``port``, ``bind_addresses``, ``keys``, ``key_file``,
        ``development``, ``log_level``, ``logging.level``, ``room.empty_timeout``,
        ``room.departure_timeout``, ``room.max_participants``, ``room.sync_streams``,
        ``rtc.port_range_start``/``port_range_end``, ``rtc.udp_port``,
        ``webhook.urls``/``api_key``, and kitewire's own ``bind``,
        ``ping_interval``, ``ping_timeout``, ``rtc.loopback_only`` and
        ``http.header_timeout``/``idle_timeout``/``max_connections``/
        ``max_connections_per_address``. A livekit-server key not implemented
        gives a warning; any other key raises ValueError naming it.
        """
        top = ConfigReader(data)

        def set_to(name: str) -> Any:
            return lambda value: setattr(self, name, value)

        top.take("port", as_port, set_to("port"))
        top.take("bind_addresses", as_str_list, set_to("bind_addresses"))
        top.take("bind", as_str, set_to("bind"))
        top.take("keys", as_keys, set_to("keys"))
        top.take("key_file", as_str, lambda path: setattr(self, "keys", _read_key_file(path)))
        top.take("development", as_bool, set_to("development"))

        def set_level(level: str) -> None:
            self.log_level, self.log_level_given = level, True

        top.take("log_level", as_str, set_level)
        top.take("ping_interval", as_int, set_to("ping_interval"))
        top.take("ping_timeout", as_int, set_to("ping_timeout"))
        logging_section = top.section("logging")
        if logging_section is not None:
            logging_section.take("level", as_str, set_level)
        room = top.section("room")
        if room is not None:
            room.take("empty_timeout", as_seconds, set_to("empty_timeout"))
            room.take("departure_timeout", as_seconds, set_to("departure_timeout"))
            room.take("max_participants", as_int, set_to("max_participants"))
            room.take("sync_streams", as_bool, set_to("sync_streams"))
        rtc = top.section("rtc")
        if rtc is not None:
            rtc.take("loopback_only", as_bool, set_to("loopback_only"))
            rtc.take("port_range_start", as_port, set_to("port_range_start"))
            rtc.take("port_range_end", as_port, set_to("port_range_end"))
            rtc.take("udp_port", as_port, set_to("udp_port"))
        webhook = top.section("webhook")
        if webhook is not None:
            webhook.take("urls", as_str_list, set_to("webhook_urls"))
            webhook.take("api_key", as_str, set_to("webhook_api_key"))
        http = top.section("http")
        if http is not None:
            for key in ("header_timeout", "idle_timeout"):
                http.take(key, as_seconds, set_to(f"http_{key}"))
            for key in ("max_connections", "max_connections_per_address"):
                http.take(key, as_int, set_to(key))
        return top.finish()

    def load_yaml_text(self, text: str, source: str = "config") -> list[str]:
        """Apply YAML config text (``--config-body``, ``LIVEKIT_CONFIG``); return warnings."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: expected YAML, got a parse error: {exc}") from None
        return self.apply_mapping({} if data is None else data)

    def load_yaml(self, path: str | Path) -> list[str]:
        """Apply a YAML config file; return warnings for ignored keys."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the config file: {exc.strerror}") from None
        return self.load_yaml_text(text, str(path))


def _read_key_file(path: str) -> dict[str, str]:
    """livekit-server's key_file: YAML mapping of key: secret."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"key_file: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"key_file: expected YAML key: secret lines in {path}, got {exc}") from None
    return as_keys(data, "key_file")
