"""``kitewire load-test``: short real runs against a server, counting, and refusals."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from kitewire import loadtest
from kitewire.bench.procfs import process_cpu_seconds, run_queue_wait_seconds
from kitewire.cli import main as cli_main
from kitewire.frames.pattern import textured_frames
from kitewire.loadtest import (
    LoadTestParams,
    LoadTestResult,
    encode_loop,
    format_report,
    params,
    replay,
    run_load_test,
)
from kitewire.loadtest import (
    participant as simulated,
)
from kitewire.media import is_keyframe
from kitewire.server import Server
from kitewire.transport import RtpHeader
from kitewire.transport.rtp import encode_abs_capture_time

from server.embedded import embedded_server  # tests/server, shared with other suites


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with embedded_server() as srv:
        yield srv


def participants_in(server: Server) -> int:
    return sum(len(room.participants) for room in server.rooms.rooms.values())


async def wait_until_empty(server: Server, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while participants_in(server) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return participants_in(server)


# --- real runs ----------------------------------------------------------------


async def test_short_load_test_every_subscriber_receives_without_loss(server: Server) -> None:
    params = LoadTestParams(
        url=server.url, video_publishers=1, subscribers=3, duration=4, resolution="720p", simulcast=False
    )
    lines: list[str] = []
    result = await run_load_test(params, log=lines.append)

    assert result.errors == {}
    assert result.expected_tracks == 1
    assert result.subscribers == ["Sub 0", "Sub 1", "Sub 2"]
    for name in result.subscribers:
        tracks = result.tracks_of(name)
        assert len(tracks) == 1, tracks
        assert tracks[0].track_sid.startswith("TR_")
        assert tracks[0].packets > 0
        assert tracks[0].loss_percent < 1.0
    # All three receive the same (one) published track.
    assert len({t.track_sid for t in result.tracks}) == 1
    assert result.complete
    assert result.packets_forwarded == sum(t.packets for t in result.tracks)
    # A 720p loop at livekit's 1.7 Mbps: the subscribers see a real video bitrate.
    assert 500 < result.median_kbps < 4000
    assert result.publisher_packets > 0 and result.publisher_frames > 0
    # Every packet the publisher sent in the window reached each subscriber (give or take
    # a frame in flight at the window's edges).
    for track in result.tracks:
        assert track.expected > 0
        assert track.delivered_percent is not None and 80 < track.delivered_percent < 110
        # Latency from the publisher's abs-capture-time, forwarded by the server.
        assert track.mean_latency_ms is not None and track.max_latency_ms is not None
        assert 0 <= track.mean_latency_ms <= track.max_latency_ms < 2000
    # No server pid given: no CPU figure.
    assert result.server_cpu_seconds is None and result.cpu_us_per_packet is None
    assert any("measuring for 4 s" in line for line in lines)
    report = format_report(result)
    assert "Sub 2" in report and "Total" in report and "3/3" in report
    # Everyone left the room: every connection was closed.
    assert await wait_until_empty(server) == 0


async def test_simulcast_publisher_is_forwarded(server: Server) -> None:
    params = LoadTestParams(
        url=server.url, video_publishers=2, subscribers=2, duration=2, resolution="360p", simulcast=True
    )
    result = await run_load_test(params, log=lambda line: None)
    assert result.errors == {}
    assert result.expected_tracks == 2
    for name in result.subscribers:
        tracks = result.tracks_of(name)
        assert len(tracks) == 2
        assert all(t.packets > 0 for t in tracks)
    assert result.complete
    assert await wait_until_empty(server) == 0


async def test_cancelling_a_run_closes_every_connection(server: Server) -> None:
    params = LoadTestParams(
        url=server.url, video_publishers=1, subscribers=2, duration=60, resolution="360p", simulcast=False
    )
    lines: list[str] = []
    task = asyncio.get_running_loop().create_task(run_load_test(params, log=lines.append))
    deadline = time.monotonic() + 30
    while not any("measuring" in line for line in lines) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert participants_in(server) == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until_empty(server) == 0


def test_cli_with_embedded_server_reports_cpu_per_packet(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        ["load-test", "--embedded", "--subscribers", "2", "--duration", "2", "--resolution", "360p", "--room", "cli"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Subscriber summaries:" in out and "Track loading:" in out
    match = re.search(r"Server pid (\d+): .* ([0-9.]+) us CPU per forwarded packet", out)
    assert match, out
    assert float(match.group(2)) > 0
    # The child server was stopped (and reaped) before the command returned.
    assert not os.path.exists(f"/proc/{match.group(1)}")


# --- argument validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subscribers": 201}, "subscribers: expected 0..200, got 201"),
        ({"subscribers": -1}, "subscribers: expected 0..200, got -1"),
        ({"video_publishers": 0}, "video publishers: expected at least 1"),
        ({"video_publishers": 51}, "video publishers: expected 0..50, got 51"),
        ({"duration": 601}, "duration: expected 1..600 seconds, got 601"),
        ({"duration": 0}, "duration: expected 1..600 seconds, got 0"),
        ({"resolution": "4k"}, "resolution: expected one of 180p, 360p, 540p, 720p, 1080p, got '4k'"),
        ({"video_codec": "av1"}, "video codec: expected one of vp8, h264, got 'av1'"),
        ({"url": "ws://192.0.2.7:7880"}, "expected a server on the loopback interface"),
        ({"url": "ftp://127.0.0.1:7880"}, "url: expected a ws:// or wss:// URL, got 'ftp://127.0.0.1:7880'"),
        ({"room": ""}, "room: expected a name of 1..128 characters, got ''"),
        ({"api_secret": ""}, "api key and secret: expected both non-empty"),
    ],
)
def test_params_refused_with_expected_and_given(changes: dict[str, object], message: str) -> None:
    params = LoadTestParams(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as info:
        params.validate()
    assert message in str(info.value)


def test_server_pid_must_be_a_running_process() -> None:
    with pytest.raises(ValueError, match="server pid: expected a running process"):
        LoadTestParams(server_pid=2**22 + 12345).validate()
    LoadTestParams(server_pid=os.getpid()).validate()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--subscribers", "500"], "subscribers: expected 0..200, got 500"),
        (["--duration", "3600"], "duration: expected 1..600 seconds, got 3600.0"),
        (["--url", "ws://10.1.2.3:7880"], "loopback"),
    ],
)
def test_cli_refuses_out_of_bounds_before_connecting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = cli_main(["load-test", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert time.monotonic() - started < 15  # refused up front: no server, no encoding, no connection


def test_run_load_test_refuses_bad_params_without_side_effects() -> None:
    with pytest.raises(ValueError, match="subscribers"):
        asyncio.run(run_load_test(LoadTestParams(subscribers=1000), log=lambda line: None))


# --- pieces -------------------------------------------------------------------


def _header(seq: int, payload: int = 100) -> RtpHeader:
    return RtpHeader(1234, seq, 0, False, 96, 12, 12 + payload, {})


def test_track_counter_counts_gaps_wraparound_and_late_packets() -> None:
    counter = simulated.TrackCounter("TR_x")
    for seq in (65533, 65534, 65535, 0, 1):  # across the wrap: no loss
        counter.on_rtp(b"", _header(seq))
    assert (counter.packets, counter.lost) == (5, 0)
    counter.on_rtp(b"", _header(5))  # 2, 3, 4 missing
    assert counter.lost == 3
    counter.on_rtp(b"", _header(3))  # a retransmission fills one gap
    assert counter.lost == 2
    assert counter.packets == 7
    assert counter.payload_bytes == 700


def test_track_counter_measures_latency_from_abs_capture_time() -> None:
    counter = simulated.TrackCounter("TR_x", capture_time_id=3)
    sent_ntp_us = int((time.time() - 0.25 + params.NTP_UNIX_OFFSET) * 1e6)
    value = encode_abs_capture_time(sent_ntp_us)
    counter.on_rtp(b"", RtpHeader(1, 10, 0, False, 96, 12, 112, {3: value}))  # not a frame's end: ignored
    assert counter.latency_count == 0
    counter.on_rtp(b"", RtpHeader(1, 11, 0, True, 96, 12, 112, {3: value}))
    assert counter.latency_count == 1
    assert 0.25 <= counter.latency_max < 5.0
    counter.on_rtp(b"", RtpHeader(1, 12, 0, True, 96, 12, 112, {}))  # no extension: no sample
    assert counter.latency_count == 1


def test_encoded_loop_starts_with_a_keyframe_near_its_bitrate() -> None:
    loop = encode_loop(640, 360, 450_000, 20.0, 1.0)
    assert len(loop.frames) == 20
    assert is_keyframe("video/VP8", loop.frames[0][0])
    assert not is_keyframe("video/VP8", loop.frames[5][0])
    # CBR rate control keeps the loop within reach of its target.
    assert 0.3 * 450 < loop.kbps < 2.0 * 450
    # kitewire's VP8 descriptor: X and I set, 15-bit picture id (patched on replay).
    first = loop.frames[1][0]
    assert first[0] & 0x80 and first[1] & 0x80 and first[2] & 0x80


def test_encode_loop_refuses_odd_sizes_and_unknown_codecs() -> None:
    with pytest.raises(ValueError, match="expected even width and height >= 16, got 641x360"):
        encode_loop(641, 360, 450_000, 20.0, 1.0)
    with pytest.raises(ValueError, match="expected 'VP8' or 'H264', got 'VP9'"):
        encode_loop(640, 360, 450_000, 20.0, 1.0, "VP9")


def test_h264_loop_starts_with_an_idr() -> None:
    loop = encode_loop(320, 180, 160_000, 15.0, 1.0, "H264")
    assert loop.codec == "H264" and len(loop.frames) == 15
    assert is_keyframe("video/H264", loop.frames[0][0])
    assert not any(is_keyframe("video/H264", p) for p in loop.frames[3])


def test_process_cpu_seconds_grows_with_work() -> None:
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    assert process_cpu_seconds(os.getpid()) > before
    with pytest.raises(OSError):
        process_cpu_seconds(2**22 + 12345)


def test_result_figures() -> None:
    tracks = [
        loadtest.TrackResult(
            "Sub 0", "TR_a", 900, 200_000, 100, 2.0, expected=1000, mean_latency_ms=2.0, max_latency_ms=9.0
        ),
        loadtest.TrackResult(
            "Sub 1", "TR_a", 1000, 300_000, 0, 2.0, expected=1000, mean_latency_ms=4.0, max_latency_ms=5.0
        ),
    ]
    result = LoadTestResult(
        params=LoadTestParams(),
        tracks=tracks,
        subscribers=["Sub 0", "Sub 1"],
        expected_tracks=1,
        window_seconds=2.0,
        errors={},
        server_pid=1,
        server_cpu_seconds=0.019,
    )
    assert tracks[0].kbps == pytest.approx(800.0)
    assert tracks[0].loss_percent == pytest.approx(10.0)
    assert result.median_kbps == pytest.approx(1000.0)
    assert result.packets_forwarded == 1900
    assert result.cpu_us_per_packet == pytest.approx(10.0)
    assert result.loss_percent == pytest.approx(5.0)
    assert tracks[0].delivered_percent == pytest.approx(90.0)
    assert result.delivered_percent == pytest.approx(95.0)
    assert result.mean_latency_ms == pytest.approx(3.0)
    assert result.max_latency_ms == pytest.approx(9.0)
    assert result.complete
    result.errors["Sub 1"] = "could not connect"
    assert not result.complete


# --- stopping from outside ----------------------------------------------------


def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(part) for part in children.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_command_leaves_no_server_behind(signum: int) -> None:
    """Ctrl-C / SIGTERM end the run cleanly; even SIGKILL takes the embedded server down."""
    command = [
        sys.executable,
        "-m",
        "kitewire",
        "load-test",
        "--embedded",
        "--subscribers",
        "2",
        "--duration",
        "60",
        "--resolution",
        "180p",
        "--no-track-table",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Shells start background jobs with SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    server_pid = 0
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if line.startswith("Started kitewire serve (pid "):
                server_pid = int(line.split("(pid ", 1)[1].split(")", 1)[0])
            if "measuring for" in line or time.monotonic() > deadline:
                break
        assert server_pid and os.path.exists(f"/proc/{server_pid}")
        assert server_pid in _children_of(process.pid)
        process.send_signal(signum)
        code = process.wait(timeout=30)
        output = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if signum == signal.SIGINT:
        assert code == 130, output
    elif signum == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM, output
        assert "every connection was closed" in output
    deadline = time.monotonic() + 15
    while os.path.exists(f"/proc/{server_pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{server_pid}")


async def test_unreachable_server_is_reported_not_measured() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lines: list[str] = []
    params = LoadTestParams(url=f"ws://127.0.0.1:{port}", subscribers=2, duration=30, resolution="180p")
    started = time.monotonic()
    result = await run_load_test(params, log=lines.append)
    assert time.monotonic() - started < 20  # did not wait out the 30 s window
    assert set(result.errors) == {"Pub 0", "Sub 0", "Sub 1"}
    assert all("could not connect" in error for error in result.errors.values())
    assert result.tracks == [] and result.window_seconds == 0
    assert not result.complete
    assert any("nothing measured" in line for line in lines)
    assert "Sub 1" in format_report(result)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_official_sdk_decodes_the_replayed_loop_across_wraps(server: Server, codec: str) -> None:
    """libwebrtc (the livekit SDK) decodes what a simulated publisher sends, also after the loop restarts."""
    from livekit import api, rtc

    loop_seconds = 1.0
    params = LoadTestParams(
        url=server.url,
        room="sdk-view",
        video_publishers=1,
        subscribers=0,
        duration=8,
        resolution="360p",
        simulcast=False,
        loop_seconds=loop_seconds,
        video_codec=codec,
    )
    lines: list[str] = []
    load = asyncio.get_running_loop().create_task(run_load_test(params, log=lines.append))
    viewer = rtc.Room()
    arrivals: list[tuple[float, int, int]] = []
    readers: list[asyncio.Task[None]] = []

    pictures: list[np.ndarray[Any, np.dtype[np.float64]]] = []

    async def read(track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track):
            frame = event.frame
            arrivals.append((time.monotonic(), frame.width, frame.height))
            if len(arrivals) % 5 == 0:
                i420 = frame.convert(rtc.VideoBufferType.I420)
                luma = np.frombuffer(bytes(i420.data), dtype=np.uint8)[: frame.width * frame.height]
                pictures.append(luma.reshape(frame.height, frame.width).astype(np.float64))

    def on_track_subscribed(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            readers.append(asyncio.get_running_loop().create_task(read(track)))

    viewer.on("track_subscribed", on_track_subscribed)
    try:
        deadline = time.monotonic() + 30
        while not any("measuring" in line for line in lines) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        grants = api.VideoGrants(room_join=True, room="sdk-view", can_publish=False)
        token = api.AccessToken("devkey", "secret").with_identity("viewer").with_grants(grants).to_jwt()
        await asyncio.wait_for(viewer.connect(server.url, token), 20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (not arrivals or arrivals[-1][0] - arrivals[0][0] < 2.5 * loop_seconds):
            await asyncio.sleep(0.1)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.wait_for(viewer.disconnect(), 10)
        result = await asyncio.wait_for(load, 30)
    assert arrivals, "the livekit SDK decoded no frame"
    assert {(w, h) for _, w, h in arrivals} == {(640, 360)}
    # Pictures kept coming through at least two loop restarts (keyframe, picture id carried on).
    span = arrivals[-1][0] - arrivals[0][0]
    assert span >= 2.5 * loop_seconds
    assert len(arrivals) >= 10 * span  # the loop runs at 20 fps
    assert result.errors == {}
    # What was decoded is the test pattern: each sampled picture matches one loop frame closely.
    sources = [source.to_ndarray()[:360].astype(np.float64) for source in textured_frames(640, 360, 20)]
    quality = []
    for picture in pictures:
        best_mse = min(float(np.mean((picture - source) ** 2)) for source in sources)
        quality.append(10 * math.log10(255.0**2 / max(best_mse, 1e-9)))
    assert pictures
    assert min(quality) > 25, [round(float(q), 1) for q in quality]


def test_run_queue_wait_is_read_for_a_live_process_only() -> None:
    wait = run_queue_wait_seconds(os.getpid())
    assert wait is not None and wait >= 0
    assert run_queue_wait_seconds(2**22 + 12345) is None


async def test_refused_publish_fails_fast_with_the_servers_reason(server: Server) -> None:
    from kitewire.engine import EngineError
    from kitewire.signal import create_token

    params = LoadTestParams(url=server.url, resolution="180p", simulcast=False, loop_seconds=0.5)
    loops = await replay.encode_loops(params)
    participant = simulated.SimulatedParticipant("Pub 0", "no-publish")
    pacer = replay.Pacer()
    token = create_token("devkey", "secret", identity="no-publish", room="refusals", can_publish=False)
    try:
        await participant.connect(server.url, token, subscribe=False, timeout=10)
        started = time.monotonic()
        with pytest.raises(EngineError, match="refused the request: .*canPublish"):
            await participant.publish(loops, replay.layer_plans(params), False, pacer, 15.0)
        assert time.monotonic() - started < 10  # the refusal ended the wait, not the 15 s timeout
    finally:
        await pacer.stop()
        await participant.close()
    assert await wait_until_empty(server) == 0


async def test_single_pc_subscribers_receive_every_track(server: Server) -> None:
    """Subscribers joining like livekit 1.x SDKs (/rtc/v1, one PeerConnection) are served too; with
    more tracks than the join offer's three video slots the server asks for more (MediaSectionsRequirement)."""
    params = LoadTestParams(
        url=server.url,
        video_publishers=4,
        subscribers=2,
        duration=2,
        resolution="180p",
        simulcast=False,
        single_pc=True,
    )
    modes: dict[str, tuple[bool, bool]] = {}

    def log(line: str) -> None:
        if "measuring for" in line:
            for room in server.rooms.rooms.values():
                for participant in room.participants.values():
                    modes[participant.identity] = (participant.single_pc, participant.subscriber_pc is None)

    result = await run_load_test(params, log=log)
    assert result.errors == {}
    for name in result.subscribers:
        tracks = result.tracks_of(name)
        assert len(tracks) == 4 and all(t.packets > 0 and t.lost == 0 for t in tracks)
    assert result.complete
    subscriber_modes = [mode for identity, mode in modes.items() if "_sub_" in identity]
    assert subscriber_modes == [(True, True), (True, True)]  # v1, no second PeerConnection
    assert await wait_until_empty(server) == 0
