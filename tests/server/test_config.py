"""Config honesty: strict keys, livekit-server keys warned about, --dev, --bind, LIVEKIT_KEYS/LIVEKIT_CONFIG."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from kitewire.server import Server, ServerConfig
from kitewire.server.cli import add_arguments, build_config

pytestmark = pytest.mark.timeout(60)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def _build(*argv: str) -> tuple[ServerConfig, list[str]]:
    warnings: list[str] = []
    return build_config(_parse(*argv), warn=warnings.append), warnings


@pytest.fixture(autouse=True)
def _no_livekit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEKIT_KEYS", raising=False)
    monkeypatch.delenv("LIVEKIT_CONFIG", raising=False)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("prot: 7880\n", "prot"),
        ("rtc:\n  udp_prot: 7882\n", "rtc.udp_prot"),
        ("room:\n  empty_timout: 3\n", "room.empty_timout"),
        ("webhook:\n  url: http://x\n", "webhook.url"),
        ("logging:\n  levle: debug\n", "logging.levle"),
    ],
)
def test_an_unknown_key_fails_naming_it(body: str, name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown key '{name}'"):
        _build("--dev", "--config-body", body)


def test_livekit_keys_not_implemented_get_one_warning_each(tmp_path: Path) -> None:
    config_file = tmp_path / "livekit.yaml"
    config_file.write_text("redis:\n  address: x:6379\nrtc:\n  tcp_port: 7881\n  use_external_ip: false\n")
    config, warnings = _build("--dev", "--config", str(config_file), "--config-body", "redis:\n  address: y\n")
    assert len(warnings) == 3
    assert sum("'redis'" in line for line in warnings) == 1
    assert any("'rtc.tcp_port'" in line for line in warnings)
    assert any("'rtc.use_external_ip'" in line for line in warnings)
    assert config.keys == {"devkey": "secret"}


def test_dev_gives_the_dev_key_only_when_no_keys_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = _build("--dev")
    assert config.keys == {"devkey": "secret"} and config.log_level == "debug"
    config, _ = _build("--dev", "--keys", "k1: s1")
    assert config.keys == {"k1": "s1"}
    config, _ = _build("--config-body", "development: true\nkeys:\n  k2: s2\n")
    assert config.keys == {"k2": "s2"} and config.log_level == "debug"
    config, _ = _build("--dev", "--log-level", "warning")
    assert config.log_level == "warning"
    config, _ = _build("--dev", "--config-body", "logging:\n  level: warning\n")
    assert config.log_level == "warning", "a level the config names stays"
    monkeypatch.setenv("LIVEKIT_KEYS", "k3: s3")
    config, _ = _build("--dev")
    assert config.keys == {"k3": "s3"}
    config, _ = _build("--config-body", "keys:\n  file: secret-file\n")
    assert config.keys == {"k3": "s3"}, "LIVEKIT_KEYS is --keys: it replaces the config's keys"
    monkeypatch.delenv("LIVEKIT_KEYS")
    with pytest.raises(ValueError, match="keys"):
        _build()


def test_livekit_config_and_config_body(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEKIT_CONFIG", "port: 9100\nkeys:\n  env: secret-env\n")
    config, _ = _build()
    assert config.port == 9100 and config.keys == {"env": "secret-env"}
    # --config-body wins over the variable; both come after --config.
    config_file = tmp_path / "c.yaml"
    config_file.write_text("port: 9000\nrtc:\n  port_range_start: 50000\n  port_range_end: 50100\n")
    config, _ = _build("--config", str(config_file), "--config-body", "port: 9200\nkeys: 'a: b'\n")
    assert config.port == 9200 and config.keys == {"a": "b"} and config.port_range == (50000, 50100)


def test_key_file_and_bad_values(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.yaml"
    key_file.write_text("kf: secret-from-file\n")
    config, _ = _build("--config-body", f"key_file: {key_file}\n")
    assert config.keys == {"kf": "secret-from-file"}
    for body, name in (
        ("port: [1, 2]\n", "port"),
        ("rtc:\n  udp_port: 70000\n", "rtc.udp_port"),
        ("rtc:\n  port_range_start: 6000\n  port_range_end: 5000\n", "port_range"),
        ("rtc: 5\n", "rtc"),
        ("- a\n- b\n", "mapping"),
        ("webhook:\n  urls: [http://127.0.0.1/h]\n  api_key: nokey\n", "webhook.api_key"),
    ):
        with pytest.raises(ValueError, match=name):
            _build("--dev", "--config-body", body)


def test_bind_repeats() -> None:
    config, _ = _build("--dev", "--bind", "127.0.0.1", "--bind", "127.0.0.2")
    assert config.bind_addresses == ["127.0.0.1", "127.0.0.2"] and config.ice_loopback_only
    config, _ = _build("--dev", "--config-body", "bind_addresses: [127.0.0.3, 127.0.0.4]\n")
    assert config.bind_addresses == ["127.0.0.3", "127.0.0.4"]


async def test_the_server_listens_on_every_bind_address_on_one_port() -> None:
    config = ServerConfig.dev(port=0)
    config.bind_addresses = ["127.0.0.1", "127.0.0.2"]
    async with Server(config) as server:
        assert server.listening_addresses == [f"tcp 127.0.0.1:{server.port}", f"tcp 127.0.0.2:{server.port}"]
        async with aiohttp.ClientSession() as session:
            for host in ("127.0.0.1", "127.0.0.2"):
                async with session.get(f"http://{host}:{server.port}/") as response:
                    assert response.status == 200


async def _serve(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kitewire",
        "serve",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_serve_prints_the_addresses_it_listens_on_and_warns_once() -> None:
    body = "redis:\n  address: localhost:6379\n"
    process = await _serve("--dev", "--port", "0", "--bind", "127.0.0.1", "--bind", "127.0.0.2", "--config-body", body)
    try:
        assert process.stdout is not None and process.stderr is not None
        lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(3)]
        port = lines[0].strip().rsplit(":", 1)[-1]
        assert lines[1].strip() == f"kitewire serve: tcp 127.0.0.1:{port}"
        assert lines[2].strip() == f"kitewire serve: tcp 127.0.0.2:{port}"
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    warnings = [line for line in stderr.decode().splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "'redis'" in warnings[0]


async def test_serve_fails_on_an_unknown_key_naming_it() -> None:
    process = await _serve("--dev", "--config-body", "rtc:\n  upd_port: 7882\n")
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "unknown key 'rtc.upd_port'" in stderr.decode()


async def test_serve_says_so_when_its_udp_port_is_taken() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        process = await _serve("--dev", "--port", "0", "--udp-port", str(taken))
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert f"UDP port {taken}" in stderr.decode()
