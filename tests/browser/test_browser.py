"""livekit-client in real Chromium against kitewire serve: the browser publishes its fake camera (VP8
simulcast, H264) to a kitewire SDK subscriber and decodes a kitewire SDK publisher's video; with dynacast it
encodes only the layers its subscriber asks for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from playwright.async_api import Page

from polling import eventually, free_udp_port

pytestmark = pytest.mark.timeout(180)

WIDTH, HEIGHT = 320, 240


def token_for(identity: str, room: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


class FrameCounter:
    """Counts the frames a kitewire VideoStream delivers of ``publisher``'s first video track."""

    def __init__(self, room: rtc.Room, publisher: str) -> None:
        self.wanted = publisher
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.mime_type = ""
        self.publisher = ""
        self._task: asyncio.Task[None] | None = None
        room.on("track_subscribed", self._subscribed)

    def _subscribed(self, track: Any, publication: Any, participant: Any) -> None:
        if self._task is not None or track.kind != rtc.TrackKind.KIND_VIDEO or participant.identity != self.wanted:
            return
        self.mime_type = publication.mime_type.lower()
        self.publisher = participant.identity
        self._task = asyncio.get_running_loop().create_task(self._count(rtc.VideoStream(track)))

    async def _count(self, stream: rtc.VideoStream) -> None:
        try:
            async for event in stream:
                self.frames += 1
                self.sizes.add((event.frame.width, event.frame.height))
        finally:
            await stream.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def kitewire_publisher(server: Server, room_name: str) -> AsyncIterator[rtc.Room]:
    """A kitewire SDK participant publishing a 30 fps test pattern (VP8) while inside."""
    room = rtc.Room()
    source = rtc.VideoSource(WIDTH, HEIGHT)
    await room.connect(server.url, token_for("kitewire-publisher", room_name))
    track = rtc.LocalVideoTrack.create_video_track("pattern", source)
    await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))

    async def feed() -> None:
        index, start = 0, time.monotonic()
        while True:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))
            index += 1
            await asyncio.sleep(max(0.0, start + index / 30 - time.monotonic()))

    task = asyncio.get_running_loop().create_task(feed())
    try:
        yield room
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await room.disconnect()
        await source.aclose()


@pytest.mark.parametrize("udp_mux", [False, True], ids=["socket-per-connection", "one-udp-port"])
async def test_browser_publishes_vp8_simulcast_and_decodes_a_kitewire_publisher(page: Page, udp_mux: bool) -> None:
    udp_port = free_udp_port() if udp_mux else 0
    config = ServerConfig.dev(port=0, empty_timeout=0.5, log_level="warning", udp_port=udp_port)
    async with Server(config) as server:
        await _vp8_both_ways(server, page)
        if udp_mux:
            assert server.udp_mux is not None and server.udp_mux.delivered > 100


async def _vp8_both_ways(server: Server, page: Page) -> None:
    viewer = rtc.Room()
    counter = FrameCounter(viewer, "browser")
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "browser-vp8"))
        async with kitewire_publisher(server, "browser-vp8"):
            await page.evaluate(
                "([url, token]) => window.kw.join(url, token)", [server.url, token_for("browser", "browser-vp8")]
            )
            await page.evaluate("window.kw.publishCamera('vp8', true)")

            async def browser_decoded() -> bool:
                decoded = await page.evaluate("window.kw.decoded()")
                presented = await page.evaluate("window.kw.presented")
                return bool(decoded.get("kitewire-publisher", 0) >= 30 and presented.get("kitewire-publisher", 0) >= 10)

            async def kitewire_received() -> bool:
                return counter.frames >= 30

            assert await eventually(kitewire_received, 60), f"kitewire got {counter.frames} frames of the browser"
            assert await eventually(browser_decoded, 60), await page.evaluate("window.kw.decoded()")
            sent = await page.evaluate("window.kw.sent()")
    finally:
        await counter.close()
        await viewer.disconnect()
    assert counter.publisher == "browser" and counter.mime_type == "video/vp8"
    # livekit-client sends two layers of a 640x480 camera (q and h, h at full size): simulcast, both VP8.
    assert len({stream["rid"] for stream in sent}) >= 2 and all(s["framesEncoded"] > 0 for s in sent), sent
    assert all(stream["mime"].lower() == "video/vp8" for stream in sent), sent
    assert await page.evaluate("window.kw.errors") == []


async def test_a_browser_h264_publish_arrives_as_h264(server: Server, page: Page) -> None:
    viewer = rtc.Room()
    counter = FrameCounter(viewer, "browser")
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "browser-h264"))
        await page.evaluate(
            "([url, token]) => window.kw.join(url, token)", [server.url, token_for("browser", "browser-h264")]
        )
        await page.evaluate("window.kw.publishCamera('h264', false)")

        async def kitewire_received() -> bool:
            return counter.frames >= 30

        assert await eventually(kitewire_received, 60), f"kitewire got {counter.frames} frames of the browser"
        sent = await page.evaluate("window.kw.sent()")
    finally:
        await counter.close()
        await viewer.disconnect()
    assert counter.mime_type == "video/h264"
    assert sent and all(stream["mime"].lower() == "video/h264" for stream in sent), sent
    assert all(stream["framesEncoded"] > 0 for stream in sent), sent


async def _encoded_per_rid(page: Page) -> dict[str, int]:
    return {stream["rid"]: int(stream["framesEncoded"]) for stream in await page.evaluate("window.kw.sent()")}


async def _layers_encoding(page: Page, seconds: float = 2.0) -> set[str]:
    """The rids whose framesEncoded grew over ``seconds``: the layers the browser encodes now."""
    before = await _encoded_per_rid(page)
    await asyncio.sleep(seconds)
    after = await _encoded_per_rid(page)
    return {rid for rid, frames in after.items() if frames > before.get(rid, 0)}


async def test_a_dynacast_browser_encodes_only_the_layers_subscribers_ask_for(server: Server, page: Page) -> None:
    viewer = rtc.Room()
    counter = FrameCounter(viewer, "browser")
    try:
        await viewer.connect(server.url, token_for("kitewire-viewer", "browser-dynacast"))
        await page.evaluate(
            "([url, token]) => window.kw.join(url, token, { dynacast: true })",
            [server.url, token_for("browser", "browser-dynacast")],
        )
        await page.evaluate("window.kw.publishCamera('vp8', true)")

        async def kitewire_received() -> bool:
            return counter.frames >= 30

        assert await eventually(kitewire_received, 60), f"kitewire got {counter.frames} frames of the browser"
        rids = set(await _encoded_per_rid(page))
        assert len(rids) >= 2, f"expected a simulcast publish, got layers {rids}"
        top = max(rids, key=lambda rid: "qhf".find(rid))
        publication = next(iter(viewer.remote_participants["browser"].track_publications.values()))
        # the one subscriber wants the lowest layer only: the browser stops encoding the top one
        publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)

        async def top_layer_paused() -> bool:
            encoding = await _layers_encoding(page)
            return top not in encoding and bool(encoding)

        assert await eventually(top_layer_paused, 30, interval=0.5), await _encoded_per_rid(page)
        # and resumes it as soon as the subscriber asks for it again
        publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)

        async def top_layer_back() -> bool:
            return top in await _layers_encoding(page)

        assert await eventually(top_layer_back, 30, interval=0.5), await _encoded_per_rid(page)
    finally:
        await counter.close()
        await viewer.disconnect()
    assert await page.evaluate("window.kw.errors") == []
