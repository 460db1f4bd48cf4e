"""VideoSource -> LocalVideoTrack -> VideoStream, without any network."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter

WIDTH, HEIGHT = 320, 180


def make_track() -> tuple[rtc.VideoSource, rtc.LocalVideoTrack]:
    source = rtc.VideoSource(WIDTH, HEIGHT)
    return source, rtc.LocalVideoTrack.create_video_track("pattern", source)


async def next_event(stream: rtc.VideoStream, timeout: float = 2.0) -> rtc.VideoFrameEvent:
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def test_local_stream_yields_captured_frames_with_timestamp_and_rotation() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)
    try:
        for index, rotation in enumerate(
            [
                rtc.VideoRotation.VIDEO_ROTATION_0,
                rtc.VideoRotation.VIDEO_ROTATION_90,
                rtc.VideoRotation.VIDEO_ROTATION_270,
            ]
        ):
            source.capture_frame(
                make_pattern_frame(index, WIDTH, HEIGHT), timestamp_us=1_000 + index, rotation=rotation
            )
        events = [await next_event(stream) for _ in range(3)]
        assert [read_frame_counter(e.frame) for e in events] == [0, 1, 2]
        assert [e.timestamp_us for e in events] == [1_000, 1_001, 1_002]
        assert [e.rotation for e in events] == [0, 1, 3]
        assert all(e.metadata is None for e in events)
        assert events[0].frame.type == rtc.VideoBufferType.I420
    finally:
        await stream.aclose()


async def test_zero_timestamp_is_stamped_with_wall_clock() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)
    before = time.time_ns() // 1000
    source.capture_frame(make_pattern_frame(0, WIDTH, HEIGHT))
    event = await next_event(stream)
    after = time.time_ns() // 1000
    await stream.aclose()
    assert before <= event.timestamp_us <= after


async def test_capture_copies_the_buffer() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
    pixels = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pixels)
    source.capture_frame(frame, timestamp_us=5)
    pixels[:] = 255  # the application reuses its buffer right away
    event = await next_event(stream)
    await stream.aclose()
    assert bytes(event.frame.data) == bytes(WIDTH * HEIGHT * 4)


async def test_format_converts_every_frame_and_two_streams_get_every_frame() -> None:
    source, track = make_track()
    rgba = rtc.VideoStream.from_track(track=track, format=rtc.VideoBufferType.RGBA)
    native = rtc.VideoStream.from_track(track=track)
    count = 20
    for index in range(count):
        source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), timestamp_us=index + 1)
    rgba_events = [await next_event(rgba) for _ in range(count)]
    native_events = [await next_event(native) for _ in range(count)]
    await rgba.aclose()
    await native.aclose()
    assert all(e.frame.type == rtc.VideoBufferType.RGBA for e in rgba_events)
    assert all(e.frame.type == rtc.VideoBufferType.I420 for e in native_events)
    assert [read_frame_counter(e.frame) for e in rgba_events] == list(range(count))
    assert [read_frame_counter(e.frame) for e in native_events] == list(range(count))
    assert [e.timestamp_us for e in rgba_events] == list(range(1, count + 1))


async def test_capacity_one_gives_a_slow_consumer_the_newest_frame() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track, capacity=1)
    stop = asyncio.Event()

    async def produce() -> None:
        index = 0
        while not stop.is_set():
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), timestamp_us=time.time_ns() // 1000)
            index += 1
            await asyncio.sleep(1 / 60)

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        for _ in range(3):
            await asyncio.sleep(1.0)  # a consumer far slower than the producer
            event = await next_event(stream)
            age_ms = (time.time_ns() // 1000 - event.timestamp_us) / 1000
            # a kept old frame would be about 1000 ms old (the pause); the newest one is one
            # producer period old, plus however long a loaded machine makes the loop late
            assert age_ms < 400, f"frame is {age_ms:.0f} ms old: not the newest"
            assert len(stream._queue) <= 1
    finally:
        stop.set()
        await producer
        await stream.aclose()


async def test_unbounded_stream_keeps_every_frame() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track, capacity=0)
    for index in range(100):
        source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), timestamp_us=index + 1)
    events = [await next_event(stream) for _ in range(100)]
    await stream.aclose()
    assert [e.timestamp_us for e in events] == list(range(1, 101))


async def test_aclose_ends_iteration_wakes_waiter_and_is_idempotent() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)
    received: list[rtc.VideoFrameEvent] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event)

    consumer = asyncio.get_running_loop().create_task(consume())
    source.capture_frame(make_pattern_frame(0, WIDTH, HEIGHT), timestamp_us=1)
    await asyncio.sleep(0.05)
    await stream.aclose()
    await asyncio.wait_for(consumer, 2.0)
    await stream.aclose()
    assert len(received) == 1
    source.capture_frame(make_pattern_frame(1, WIDTH, HEIGHT), timestamp_us=2)
    with pytest.raises(StopAsyncIteration):
        await next_event(stream)


async def test_aclose_before_any_frame_and_with_frames_pending() -> None:
    source, track = make_track()
    empty = rtc.VideoStream(track)
    await empty.aclose()
    assert [e async for e in empty] == []
    pending = rtc.VideoStream(track)
    source.capture_frame(make_pattern_frame(0, WIDTH, HEIGHT), timestamp_us=1)
    await pending.aclose()
    assert [e async for e in pending] == []


async def test_source_close_ends_streams_after_draining() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)
    source.capture_frame(make_pattern_frame(7, WIDTH, HEIGHT), timestamp_us=1)
    await source.aclose()
    events = [e async for e in stream]
    assert [read_frame_counter(e.frame) for e in events] == [7]
    late = rtc.VideoStream(track)
    assert [e async for e in late] == []


async def test_frames_captured_on_another_thread_arrive() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)

    def produce() -> None:
        for index in range(5):
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT), timestamp_us=index + 1)

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    events = [await next_event(stream) for _ in range(5)]
    await stream.aclose()
    assert [e.timestamp_us for e in events] == [1, 2, 3, 4, 5]


async def test_conversion_runs_off_the_event_loop() -> None:
    source = rtc.VideoSource(1280, 720)
    track = rtc.LocalVideoTrack.create_video_track("big", source)
    stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
    loop_threads: set[int] = set()
    original = rtc.VideoFrame.convert

    def spy(self: rtc.VideoFrame, *args: object, **kwargs: object) -> rtc.VideoFrame:
        loop_threads.add(threading.get_ident())
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    rtc.VideoFrame.convert = spy  # type: ignore[method-assign]
    try:
        source.capture_frame(make_pattern_frame(3, 1280, 720), timestamp_us=1)
        event = await next_event(stream)
    finally:
        rtc.VideoFrame.convert = original  # type: ignore[method-assign]
        await stream.aclose()
    assert read_frame_counter(event.frame) == 3
    assert loop_threads and threading.get_ident() not in loop_threads


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"capacity": -1}, "capacity"),
        ({"capacity": 1.5}, "capacity"),
        ({"format": 99}, "format"),
    ],
)
async def test_bad_stream_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    _, track = make_track()
    with pytest.raises(ValueError, match=message):
        rtc.VideoStream(track, **kwargs)  # type: ignore[arg-type]


async def test_bad_track_and_participant_arguments() -> None:
    with pytest.raises(ValueError, match="Track"):
        rtc.VideoStream("not a track")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Participant"):
        rtc.VideoStream.from_participant(participant="nobody", track_source=rtc.TrackSource.SOURCE_CAMERA)  # type: ignore[arg-type]


async def test_bad_capture_arguments() -> None:
    source, _ = make_track()
    frame = make_pattern_frame(0, WIDTH, HEIGHT)
    with pytest.raises(ValueError, match="VideoFrame"):
        source.capture_frame(b"raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rotation"):
        source.capture_frame(frame, rotation=4)
    with pytest.raises(ValueError, match="timestamp_us"):
        source.capture_frame(frame, timestamp_us=-1)
    with pytest.raises(ValueError, match="width"):
        rtc.VideoSource(0, 10)
    with pytest.raises(ValueError, match="source"):
        rtc.LocalVideoTrack.create_video_track("x", object())  # type: ignore[arg-type]


def test_options_have_livekit_names_and_validate() -> None:
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA,
        simulcast=True,
        video_codec=rtc.VideoCodec.H264,
        video_encoding=rtc.VideoEncoding(max_bitrate=2_000_000, max_framerate=30),
    )
    assert options.video_encoding is not None and options.video_encoding.max_bitrate == 2_000_000
    assert rtc.RoomOptions().auto_subscribe is True
    with pytest.raises(ValueError, match="video_codec"):
        rtc.TrackPublishOptions(video_codec=7)  # no such VideoCodec
    assert rtc.ConnectionState.Name(rtc.ConnectionState.CONN_CONNECTED) == "CONN_CONNECTED"
    assert rtc.DisconnectReason.CLIENT_INITIATED == 1


async def test_a_stream_dropped_without_aclose_stops_collecting_frames() -> None:
    import gc

    source, track = make_track()
    stream = rtc.VideoStream(track)
    source.capture_frame(make_pattern_frame(0, WIDTH, HEIGHT), timestamp_us=1)
    del stream
    gc.collect()
    source.capture_frame(make_pattern_frame(1, WIDTH, HEIGHT), timestamp_us=2)
    assert not source._fanout.has_sinks


async def test_every_task_iterating_one_stream_ends() -> None:
    source, track = make_track()
    stream = rtc.VideoStream(track)

    async def drain() -> int:
        return len([event async for event in stream])

    consumers = [asyncio.get_running_loop().create_task(drain()) for _ in range(3)]
    await asyncio.sleep(0.05)
    await source.aclose()
    counts = await asyncio.wait_for(asyncio.gather(*consumers), 2)
    assert counts == [0, 0, 0]
