"""The engine in its media process: media independent of the application's GIL, and the
process's life tied to the application's (kitewire/engine/process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kitewire import rtc
from kitewire.bench.server_process import EmbeddedServer
from kitewire.engine.process import RemoteEngine, media_process_enabled
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not media_process_enabled(), reason="KITEWIRE_MEDIA_PROCESS=0 runs the engine in-process"),
]

WIDTH, HEIGHT, FPS = 320, 180, 30
# every captured frame carries its own counter (no test here captures more than this)
DISTINCT_FRAMES = 256
CAMERA = rtc.TrackSource.SOURCE_CAMERA
_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server_process() -> AsyncIterator[EmbeddedServer]:
    # a server in its own process: the test's busy loop must not stall it
    async with EmbeddedServer() as running:
        yield running


def _token(identity: str, room: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


class ThreadCapture:
    """Captures counter frames at 30 fps from a thread of its own, noting when each went out."""

    def __init__(self, source: rtc.VideoSource) -> None:
        self._source = source
        self._stop = threading.Event()
        self.sent: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, name="test-capture", daemon=True)

    def _run(self) -> None:
        frames = [make_pattern_frame(i, WIDTH, HEIGHT) for i in range(DISTINCT_FRAMES)]
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            self.sent[index] = time.monotonic()
            self._source.capture_frame(frames[index % DISTINCT_FRAMES])
            index += 1
            self._stop.wait(max(0.0, start + index / FPS - time.monotonic()))

    def __enter__(self) -> ThreadCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


async def _connect(url: str, identity: str, room: str) -> rtc.Room:
    joined = rtc.Room()
    await joined.connect(url, _token(identity, room))
    return joined


async def _publish(room: rtc.Room) -> rtc.VideoSource:
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("pattern", source)
    await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=CAMERA, simulcast=False))
    return source


def _subscribed(room: rtc.Room) -> asyncio.Future[rtc.RemoteVideoTrack]:
    future: asyncio.Future[rtc.RemoteVideoTrack] = asyncio.get_running_loop().create_future()

    def on_subscribed(track: rtc.RemoteVideoTrack, *_: object) -> None:
        if not future.done():
            future.set_result(track)

    room.on("track_subscribed", on_subscribed)
    return future


def _media_pid(room: rtc.Room) -> int:
    engine = room._session.engine
    assert isinstance(engine, RemoteEngine) and engine.media_pid is not None
    return engine.media_pid


def _process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return True


async def _counters(stream: rtc.VideoStream, into: list[tuple[float, int | None]]) -> None:
    async for event in stream:
        into.append((time.monotonic(), read_frame_counter(event.frame)))


def _hold_the_gil(seconds: float) -> int:
    # pure Python: the GIL is let go only at the interpreter's switch interval
    end = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < end:
        spins += 1
    return spins


async def test_media_flows_while_the_application_thread_holds_the_gil(server_process: EmbeddedServer) -> None:
    viewer = await _connect(server_process.url, "viewer", "busy")
    publisher = await _connect(server_process.url, "publisher", "busy")
    try:
        subscribed = _subscribed(viewer)
        source = await _publish(publisher)
        track = await asyncio.wait_for(subscribed, 20)
        stream = rtc.VideoStream(track)
        received: list[tuple[float, int | None]] = []
        reader = asyncio.get_running_loop().create_task(_counters(stream, received))
        with ThreadCapture(source) as capture:
            await asyncio.sleep(2.0)  # flowing before the busy spell
            busy_from = time.monotonic()
            _hold_the_gil(3.0)  # the event loop (this thread) runs nothing meanwhile
            busy_until = time.monotonic()
            await asyncio.sleep(2.0)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stream.aclose()
        assert len(capture.sent) < DISTINCT_FRAMES
        captured_while_busy = {i for i, at in capture.sent.items() if busy_from + 0.2 <= at <= busy_until - 0.2}
        # frames captured while the loop was stuck were encoded, sent, received and
        # decoded meanwhile (in-process, the stuck loop would have dropped all but one);
        # they reach the stream once the loop runs again
        delivered = {counter for _, counter in received if counter is not None}
        assert len(captured_while_busy & delivered) >= 0.6 * len(captured_while_busy), (
            f"{len(captured_while_busy & delivered)} of {len(captured_while_busy)} frames captured while busy"
        )
    finally:
        await asyncio.wait_for(publisher.disconnect(), 10)
        await asyncio.wait_for(viewer.disconnect(), 10)


def _next_without_the_loop(stream: rtc.VideoStream) -> rtc.VideoFrameEvent | None:
    """The stream's next event if it is ready without the event loop running once, else None."""
    step = stream.__anext__()
    try:
        step.send(None)
    except StopIteration as done:
        event: rtc.VideoFrameEvent = done.value
        return event
    step.close()
    return None


async def test_a_capacity_one_stream_holds_the_newest_frame_when_a_busy_consumer_comes_back(
    server_process: EmbeddedServer,
) -> None:
    viewer = await _connect(server_process.url, "viewer", "newest")
    publisher = await _connect(server_process.url, "publisher", "newest")
    try:
        subscribed = _subscribed(viewer)
        source = await _publish(publisher)
        track = await asyncio.wait_for(subscribed, 20)
        stream = rtc.VideoStream(track, capacity=1)
        with ThreadCapture(source) as capture:
            first = await asyncio.wait_for(stream.__anext__(), 20)
            assert read_frame_counter(first.frame) is not None
            del first
            _hold_the_gil(2.0)  # a consumer busy in Python: its loop runs nothing meanwhile
            busy_until = time.monotonic()
            # the frames decoded meanwhile went into the stream without the loop: the
            # newest one is there at once, not one that waited or is still on its way
            event = _next_without_the_loop(stream)
        await stream.aclose()
        assert event is not None, "no frame was ready when the consumer came back"
        counter = read_frame_counter(event.frame)
        assert counter is not None
        recent = {i % DISTINCT_FRAMES for i, at in capture.sent.items() if at >= busy_until - 1.0}
        assert counter in recent, f"frame {counter} was not among those captured in the last second of the hold"
    finally:
        await asyncio.wait_for(publisher.disconnect(), 10)
        await asyncio.wait_for(viewer.disconnect(), 10)


def _audio_subscribed(room: rtc.Room) -> asyncio.Future[rtc.RemoteAudioTrack]:
    future: asyncio.Future[rtc.RemoteAudioTrack] = asyncio.get_running_loop().create_future()

    def on_subscribed(track: rtc.Track, *_: object) -> None:
        if isinstance(track, rtc.RemoteAudioTrack) and not future.done():
            future.set_result(track)

    room.on("track_subscribed", on_subscribed)
    return future


HOLD = 0.3


async def test_audio_captured_ahead_flows_while_the_application_thread_holds_the_gil(
    server_process: EmbeddedServer,
) -> None:
    viewer = await _connect(server_process.url, "viewer", "busy-audio")
    publisher = await _connect(server_process.url, "publisher", "busy-audio")
    try:
        subscribed = _audio_subscribed(viewer)
        source = rtc.AudioSource(48000, 1, queue_size_ms=1000)
        microphone = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await publisher.local_participant.publish_track(microphone, options)
        track = await asyncio.wait_for(subscribed, 20)
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
        received: list[tuple[float, int]] = []  # (arrival, samples)

        async def count() -> None:
            async for event in stream:
                received.append((time.monotonic(), event.frame.samples_per_channel))

        async def capture() -> None:
            # a producer faster than real time: the source's queue (1 s) stays full
            frame = rtc.AudioFrame.create(48000, 1, 960)
            while True:
                await source.capture_frame(frame)

        loop = asyncio.get_running_loop()
        counter = loop.create_task(count())
        producer = loop.create_task(capture())
        await asyncio.sleep(3.0)  # flowing, the queue full
        assert source.queued_duration >= 0.5
        engine = viewer._session.engine
        assert isinstance(engine, RemoteEngine)

        def concealed_so_far() -> int:
            pipeline = engine.remote_audio_pipeline(track.sid)
            assert pipeline is not None
            return pipeline.frames_concealed

        # the same window twice: the loop free (what this machine conceals anyway), then busy
        start = concealed_so_far()
        await asyncio.sleep(HOLD + 2.0)
        baseline = concealed_so_far() - start
        start = concealed_so_far()
        window_from = time.monotonic()
        _hold_the_gil(HOLD)  # nothing of this loop runs: neither the producer nor any pacing here
        await asyncio.sleep(2.0)
        window_until = time.monotonic()
        concealed = concealed_so_far() - start
        for task in (producer, counter):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stream.aclose()
        await source.aclose()
        # what the subscriber got for the window: its audio was paced in the media
        # process from the queue captured ahead, so no 300 ms hole (15 Opus frames of
        # 20 ms; the pacer on this loop left 12 concealed) had to be filled in, and the
        # received audio covers the window
        got = sum(samples for at, samples in received if window_from <= at <= window_until) / 48000
        assert concealed <= baseline + 5, f"{concealed} 20 ms frames concealed around the hold ({baseline} without)"
        assert got >= 0.8 * (window_until - window_from), f"{got:.2f} s of audio in the window"
    finally:
        await asyncio.wait_for(publisher.disconnect(), 10)
        await asyncio.wait_for(viewer.disconnect(), 10)


async def test_killing_the_media_process_reconnects_with_a_new_one(server_process: EmbeddedServer) -> None:
    viewer = await _connect(server_process.url, "viewer", "crash")
    publisher = await _connect(server_process.url, "publisher", "crash")
    events: list[str] = []
    reconnected = asyncio.Event()
    viewer.on("reconnecting", lambda: events.append("reconnecting"))

    def on_reconnected() -> None:
        events.append("reconnected")
        reconnected.set()

    viewer.on("reconnected", on_reconnected)
    try:
        subscribed = _subscribed(viewer)
        source = await _publish(publisher)
        first_track = await asyncio.wait_for(subscribed, 20)
        with ThreadCapture(source):
            stream = rtc.VideoStream(first_track)
            before: list[tuple[float, int | None]] = []
            reader = asyncio.get_running_loop().create_task(_counters(stream, before))
            await asyncio.sleep(1.5)
            assert before, "no frame before the crash"
            old_pid = _media_pid(viewer)
            # both rooms share the media process: both rejoin, the publisher republishes
            resubscribed = _subscribed(viewer)
            os.kill(old_pid, signal.SIGKILL)
            await asyncio.wait_for(reconnected.wait(), 30)
            new_pid = _media_pid(viewer)
            track = await asyncio.wait_for(resubscribed, 20)
            after: list[tuple[float, int | None]] = []
            again = rtc.VideoStream(track)
            second_reader = asyncio.get_running_loop().create_task(_counters(again, after))
            await asyncio.sleep(3.0)
        for task in (reader, second_reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stream.aclose()
        await again.aclose()
        assert new_pid != old_pid and _process_gone(old_pid)
        assert events == ["reconnecting", "reconnected"]
        assert viewer.connection_state == rtc.ConnectionState.CONN_CONNECTED
        counters = [c for _, c in after if c is not None]
        assert len(counters) >= 20, f"{len(counters)} frames in 3 s after the reconnect"
    finally:
        await asyncio.wait_for(publisher.disconnect(), 10)
        await asyncio.wait_for(viewer.disconnect(), 10)


async def test_a_lost_media_process_without_reconnecting_disconnects_with_media_failure(
    server_process: EmbeddedServer,
) -> None:
    room = rtc.Room()
    room.reconnect_timeout = 0.0
    reasons: list[int] = []
    disconnected = asyncio.Event()

    def on_disconnected(reason: int) -> None:
        reasons.append(reason)
        disconnected.set()

    room.on("disconnected", on_disconnected)
    await room.connect(server_process.url, _token("alone", "gone"))
    os.kill(_media_pid(room), signal.SIGKILL)
    await asyncio.wait_for(disconnected.wait(), 20)
    assert reasons == [rtc.DisconnectReason.MEDIA_FAILURE]
    assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
    await room.disconnect()


_APPLICATION = textwrap.dedent(
    """
    import sys, time
    from kitewire.engine.process import MediaProcess
    process = MediaProcess.shared()
    print(process.pid, flush=True)
    time.sleep(120)
    """
)


def test_killing_the_application_leaves_no_media_process() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    application = subprocess.Popen(
        [sys.executable, "-c", _APPLICATION], stdout=subprocess.PIPE, env=env, text=True, cwd=_ROOT
    )
    try:
        assert application.stdout is not None
        media_pid = int(application.stdout.readline())
        assert not _process_gone(media_pid)
        application.kill()  # SIGKILL: no atexit, no cleanup of any kind
        application.wait(10)
        deadline = time.monotonic() + 10
        while not _process_gone(media_pid):
            assert time.monotonic() < deadline, f"media process {media_pid} outlived its application"
            time.sleep(0.05)
    finally:
        if application.poll() is None:
            application.kill()
            application.wait(10)
