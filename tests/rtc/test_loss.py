"""kitewire -> kitewire server -> kitewire under UDP loss in the suite's own network namespace.

The loss is real (nftables drops packets on their way in), on both hops and in
both directions, so NACKs, retransmissions, keyframe requests and receiver
reports are lost too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable

from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter

from lossy_namespace import dropping_udp

RoomFactory = Callable[..., Awaitable[rtc.Room]]

WIDTH, HEIGHT = 640, 360
FPS = 30.0
MAX_BITRATE = 1_500_000


async def capture_forever(source: rtc.VideoSource) -> None:
    frames = [make_pattern_frame(index, WIDTH, HEIGHT) for index in range(64)]
    index = 0
    start = time.monotonic()
    while True:
        source.capture_frame(frames[index % 64], timestamp_us=time.time_ns() // 1000)
        index += 1
        await asyncio.sleep(max(0.0, start + index / FPS - time.monotonic()))


def advancing(counters: list[int]) -> bool:
    """Each counter follows the one before (the capture loop repeats 64 patterns; skipped frames are fine)."""
    return all(0 < (later - earlier) % 64 < 32 for earlier, later in zip(counters, counters[1:], strict=False))


class Received:
    """Every frame a stream yields: (arrival time, width, counter or None)."""

    def __init__(self, stream: rtc.VideoStream) -> None:
        self.frames: list[tuple[float, int, int | None]] = []
        self.task = asyncio.get_running_loop().create_task(self._read(stream))

    async def _read(self, stream: rtc.VideoStream) -> None:
        async for event in stream:
            self.frames.append((time.monotonic(), event.frame.width, read_frame_counter(event.frame)))

    def between(self, start: float, end: float) -> list[tuple[float, int, int | None]]:
        return [frame for frame in self.frames if start <= frame[0] < end]

    async def first(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.frames and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self.frames, "no frame arrived"


async def start_stream(
    connect_room: RoomFactory,
) -> tuple[rtc.Room, rtc.RemoteVideoTrack, rtc.VideoSource, Received]:
    viewer = await connect_room("viewer")
    subscribed: asyncio.Future[rtc.RemoteVideoTrack] = asyncio.get_running_loop().create_future()

    @viewer.on("track_subscribed")
    def on_subscribed(track: rtc.Track, publication: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        if isinstance(track, rtc.RemoteVideoTrack) and not subscribed.done():
            subscribed.set_result(track)

    publisher = await connect_room("publisher")
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("pattern", source)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=False,
        video_encoding=rtc.VideoEncoding(max_bitrate=MAX_BITRATE, max_framerate=FPS),
    )
    await publisher.local_participant.publish_track(track, options)
    remote = await asyncio.wait_for(subscribed, 15)
    received = Received(rtc.VideoStream(remote))
    return viewer, remote, source, received


def udp_datagrams_through(count: int) -> int:
    """Send ``count`` datagrams to ourselves on 127.0.0.1; how many arrive."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.2)
        for index in range(count):
            sender.sendto(index.to_bytes(4, "big"), receiver.getsockname())
        arrived = 0
        with contextlib.suppress(TimeoutError):
            while arrived < count:
                receiver.recv(16)
                arrived += 1
        return arrived


def test_the_loss_table_drops_that_share_of_udp_and_goes_away_after() -> None:
    with dropping_udp(100):
        assert udp_datagrams_through(50) == 0  # silent: sendto() did not fail
    with dropping_udp(30):
        assert 10 <= udp_datagrams_through(400) <= 390
    assert udp_datagrams_through(50) == 50


async def test_under_heavy_loss_frames_keep_coming_smaller_and_full_size_returns_after(
    connect_room: RoomFactory,
) -> None:
    viewer, remote, source, received = await start_stream(connect_room)
    capture = asyncio.get_running_loop().create_task(capture_forever(source))
    try:
        await received.first(15)
        with dropping_udp(20):
            lossy_from = time.monotonic()
            await asyncio.sleep(10)
            lossy_until = time.monotonic()
        await asyncio.sleep(4)
        after = time.monotonic()
    finally:
        capture.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await capture
        received.task.cancel()
        await source.aclose()
    # once the publisher had time to react, every second of loss still brings new pictures
    settled = received.between(lossy_from + 5, lossy_until)
    for second in range(5):
        start = lossy_from + 5 + second
        counters = {counter for _, _, counter in received.between(start, start + 1) if counter is not None}
        assert counters, f"no readable frame in second {5 + second} of 20 % loss ({len(settled)} in the last 5 s)"
    # the publisher answered the loss with smaller pictures (fewer packets per frame)
    assert min(width for _, width, _ in settled) < WIDTH
    # and the receiver asked for what was lost and for keyframes to recover
    engine = viewer._session.engine
    assert engine is not None
    pipeline = engine.remote_pipeline(remote.sid)
    assert pipeline is not None
    assert pipeline.nacks_sent > 0 and pipeline.keyframe_requests_sent > 0
    # after the loss, pictures keep coming with advancing counters
    recovered = [counter for _, _, counter in received.between(lossy_until + 1, after) if counter is not None]
    assert len(recovered) >= 30, f"{len(recovered)} readable frames in the 3 s after the loss ended"
    assert advancing(recovered)


async def test_light_loss_is_repaired_without_shrinking_the_picture(connect_room: RoomFactory) -> None:
    _, _, source, received = await start_stream(connect_room)
    capture = asyncio.get_running_loop().create_task(capture_forever(source))
    try:
        await received.first(15)
        with dropping_udp(5):
            lossy_from = time.monotonic()
            await asyncio.sleep(6)
            lossy_until = time.monotonic()
    finally:
        capture.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await capture
        received.task.cancel()
        await source.aclose()
    frames = received.between(lossy_from, lossy_until)
    assert {width for _, width, _ in frames} == {WIDTH}
    counters = [counter for _, _, counter in frames if counter is not None]
    # NACKed retransmissions fill most gaps: most captured frames are shown, in order
    assert len(counters) >= 0.5 * FPS * (lossy_until - lossy_from), f"{len(counters)} frames in 6 s of 5 % loss"
    assert advancing(counters)
