"""Reading a livekit.yaml-style config strictly.

Every key is one of three kinds: one kitewire implements (applied), one
livekit-server has that kitewire does not implement (ignored with one warning
naming it), or neither (an error naming it, so a typo never passes silently).
Sections kitewire implements nothing of (``redis``, ``turn``, ...) are ignored
as a whole with one warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LIVEKIT_UNIMPLEMENTED", "ConfigReader"]

#: livekit-server keys (dotted) kitewire accepts and ignores, warning once for each.
LIVEKIT_UNIMPLEMENTED: frozenset[str] = frozenset(
    {
        "prometheus_port",
        "prometheus",
        "environment",
        "redis",
        "audio",
        "video",
        "turn",
        "ingress",
        "node_selector",
        "region",
        "signal_relay",
        "psrpc",
        "limit",
        "rtc.tcp_port",
        "rtc.node_ip",
        "rtc.use_external_ip",
        "rtc.stun_servers",
        "rtc.turn_servers",
        "rtc.use_ice_lite",
        "rtc.interfaces",
        "rtc.ips",
        "rtc.use_mdns",
        "rtc.strict_acks",
        "rtc.packet_buffer_size",
        "rtc.packet_buffer_size_video",
        "rtc.packet_buffer_size_audio",
        "rtc.pli_throttle",
        "rtc.congestion_control",
        "rtc.allow_tcp_fallback",
        "rtc.reconnect_on_publication_error",
        "rtc.reconnect_on_subscription_error",
        "rtc.reconnect_on_data_channel_error",
        "rtc.enable_loopback_candidate",
        "rtc.batch_io",
        "room.auto_create",
        "room.enabled_codecs",
        "room.enable_remote_unmute",
        "room.max_metadata_size",
        "room.playout_delay",
        "room.participant_disconnect_timeout",
        "room.max_room_name_length",
        "room.max_participant_identity_length",
        "logging.json",
        "logging.sample",
        "logging.pion_level",
        "logging.component_levels",
    }
)


class ConfigReader:
    """Walks a config mapping: ``take`` claims a key, ``section`` a nested mapping.

    ``finish()`` returns the warnings for ignored livekit-server keys and raises
    ValueError naming the first key that is neither taken nor a livekit-server key.
    """

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, Mapping):
            where = path or "config"
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        for key in data:
            if not isinstance(key, str):
                raise ValueError(f"{path or 'config'}: expected string keys, got {key!r}")
        self._data: Mapping[str, Any] = data
        self._path = path
        self._taken: set[str] = set()
        self._children: list[ConfigReader] = []

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def take(self, key: str, convert: Callable[[Any, str], Any], apply: Callable[[Any], None]) -> None:
        """If ``key`` is present, convert its value (ValueError naming it) and apply it."""
        if key in self._data:
            self._taken.add(key)
            apply(convert(self._data[key], self._name(key)))

    def section(self, key: str) -> ConfigReader | None:
        """The nested mapping ``key`` (ValueError if not a mapping), or None when absent or null."""
        if key not in self._data:
            return None
        self._taken.add(key)
        value = self._data[key]
        if value is None:
            return None
        child = ConfigReader(value, self._name(key))
        self._children.append(child)
        return child

    def finish(self) -> list[str]:
        """Warnings for ignored livekit-server keys; ValueError for an unknown key."""
        warnings: list[str] = []
        for key in self._data:
            if key in self._taken:
                continue
            name = self._name(key)
            if name not in LIVEKIT_UNIMPLEMENTED:
                raise ValueError(f"config: unknown key {name!r} (not a kitewire or livekit-server setting)")
            warnings.append(f"config key {name!r} is a livekit-server setting kitewire does not implement; ignored")
        for child in self._children:
            warnings.extend(child.finish())
        return warnings


def as_int(value: Any, name: str) -> int:
    """An integer (ints and digit strings); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {value!r}") from None


def as_port(value: Any, name: str) -> int:
    """A port number 0..65535."""
    port = as_int(value, name)
    if not 0 <= port <= 65535:
        raise ValueError(f"{name}: expected a port 0..65535, got {value!r}")
    return port


def as_seconds(value: Any, name: str) -> float:
    """A number of seconds (int, float or numeric string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}") from None


def as_str(value: Any, name: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {value!r}")
    return value


def as_bool(value: Any, name: str) -> bool:
    """A YAML boolean."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def as_str_list(value: Any, name: str) -> list[str]:
    """A non-empty list of strings."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name}: expected a list of strings, got {value!r}")
    return list(value)


def as_keys(value: Any, name: str) -> dict[str, str]:
    """API keys: a mapping of key: secret, or "key: secret" text."""
    from kitewire.signal.token import parse_keys

    if isinstance(value, str):
        return parse_keys(value)
    if isinstance(value, Mapping) and value:
        keys = {str(k): str(v) for k, v in value.items() if v is not None}
        if len(keys) == len(value) and all(keys.values()):
            return keys
    raise ValueError(f"{name}: expected a mapping of key: secret, got {value!r}")
