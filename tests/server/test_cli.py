"""``kitewire token`` and ``kitewire serve``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from kitewire.cli import main
from kitewire.server.cli import add_arguments, build_config
from kitewire.signal import verify_token

pytestmark = pytest.mark.timeout(60)


def test_token_command_prints_a_verifiable_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--identity", "ann", "--room", "demo", "--no-can-publish", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    claims = verify_token(token, {"devkey": "secret"})
    assert claims.identity == "ann" and claims.video.room == "demo"
    assert claims.video.can_publish is False and claims.video.can_subscribe is True
    assert 50 <= claims.expires_at - claims.not_before <= 70


def test_token_command_rejects_bad_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--identity", "a", "--room", "r", "--ttl", "-5"]) == 2
    assert "--ttl" in capsys.readouterr().err


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_serve_config_merging(tmp_path: Path) -> None:
    config = build_config(_parse("--dev"))
    assert config.keys == {"devkey": "secret"} and config.bind == "127.0.0.1" and config.port == 7880
    assert config.ice_loopback_only
    yaml_file = tmp_path / "kitewire.yaml"
    yaml_file.write_text("port: 9000\nkeys:\n  k1: s1\nroom:\n  empty_timeout: 7\nlogging:\n  level: debug\n")
    config = build_config(_parse("--config", str(yaml_file), "--keys", "k2: s2", "--port", "0"))
    assert config.keys == {"k2": "s2"}, "--keys replaces the file's keys, as in livekit-server"
    assert config.port == 0 and config.empty_timeout == 7 and config.log_level == "debug"
    with pytest.raises(ValueError, match="keys"):
        build_config(_parse())
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [1, 2]\n")
    with pytest.raises(ValueError, match="port"):
        build_config(_parse("--config", str(bad), "--dev"))


async def test_serve_runs_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kitewire",
        "serve",
        "--dev",
        "--port",
        "0",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert "listening on ws://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[-1].replace("ws://", "http://")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/") as response:
                assert response.status == 200
            async with session.get(url + "/rtc/validate", params={"access_token": "nope"}) as response:
                assert response.status == 401
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_simulated_clients_against_embedded_server() -> None:
    from kitewire.loadtest import LoadTestParams, format_report, run_load_test

    params = LoadTestParams(embedded=True, subscribers=2, duration=3, resolution="180p", simulcast=False)
    result = await run_load_test(params, log=lambda line: None)
    assert result.complete, format_report(result)
    assert result.server_cpu_seconds is not None  # the embedded server ran in a child process
    for name in result.subscribers:
        (track,) = result.tracks_of(name)
        # What arrives is what the publisher sent on the forwarded layer.
        assert track.delivered_percent is not None and track.delivered_percent >= 80, format_report(result)


def test_serve_reads_livekit_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_KEYS", "envkey: envsecret")
    assert build_config(_parse()).keys == {"envkey": "envsecret"}
    # Explicit options win over the environment.
    assert build_config(_parse("--keys", "k: s")).keys == {"k": "s"}


def test_dev_config_rejects_unknown_settings() -> None:
    from kitewire.server import ServerConfig

    assert ServerConfig.dev(port=0).port == 0
    with pytest.raises(ValueError, match="prot"):
        ServerConfig.dev(prot=1)
    with pytest.raises(ValueError, match="ping"):
        ServerConfig.dev(ping_interval=10, ping_timeout=5).validate()
