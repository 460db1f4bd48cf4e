"""Oversized and large offers on the signal socket, while a room beside them keeps streaming."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from kitewire.server import Server
from kitewire.signal import create_token
from kitewire.transport.sdp import MAX_MEDIA_SECTIONS, parse_sdp
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .live_room import LiveRoom
from .sdk_media import in_order_fraction

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def neighbour(live_room: LiveRoom) -> LiveRoom:
    # Past the first second, when the publisher's encoder still skips frames while its bandwidth estimate ramps up.
    await asyncio.sleep(1.5)
    return live_room


def offer(m_lines: int) -> str:
    """A bundled offer of ``m_lines`` minimal recvonly video m-lines (~110 bytes each)."""
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += ["a=group:BUNDLE " + " ".join(str(i) for i in range(m_lines))]
    lines += ["a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=setup:actpass"]
    lines += ["a=fingerprint:sha-256 " + ":".join(["AB"] * 32)]
    for i in range(m_lines):
        lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", f"a=mid:{i}", "a=recvonly"]
        lines += ["a=rtcp-mux", "a=rtpmap:96 VP8/90000"]
    return "\r\n".join(lines) + "\r\n"


class LoopStalls:
    """The longest the event loop went without running this task's 1 ms ticks (for the benchmark lines)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def stop(self) -> float:
        self._task.cancel()
        return self.longest


async def _send_offer(server: Server, identity: str, sdp: str) -> tuple[aiohttp.ClientWebSocketResponse, float]:
    """Join room "attack" on a raw signal socket and send ``sdp`` as the publisher offer."""
    token = create_token("devkey", "secret", identity=identity, room="attack")
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"{server.url}/rtc", params={"access_token": token, "protocol": "16"})
    ws._kitewire_session = session  # type: ignore[attr-defined]
    join = pb_rtc.SignalResponse.FromString((await ws.receive(timeout=10)).data)
    assert join.WhichOneof("message") == "join"
    request = pb_rtc.SignalRequest(offer=pb_rtc.SessionDescription(type="offer", sdp=sdp, id=1))
    await ws.send_bytes(request.SerializeToString())
    return ws, time.perf_counter()


async def _close(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._kitewire_session.close()  # type: ignore[attr-defined]


async def _assert_kept_frames(live: LiveRoom, mark: int) -> float:
    """At least 99% of the frames since ``mark``, in order (observed over 4 s or more, so one lost frame is < 1%)."""
    assert live.reader is not None
    await asyncio.sleep(2.0)  # on top of check_since's 2 s
    window = live.reader.counters[mark:]
    fraction, increasing = in_order_fraction(window)
    missing = sorted(set(range(window[0], window[-1] + 1)) - set(window)) if window else []
    assert increasing and fraction >= 0.99, f"neighbour kept {fraction:.1%} of its frames; missing {missing}"
    return fraction


async def test_a_7000_m_line_offer_is_refused_and_the_neighbour_keeps_its_frames(
    server: Server, neighbour: LiveRoom
) -> None:
    mark, started = neighbour.mark(), time.monotonic()
    sdp = offer(7000)
    stalls = LoopStalls()
    ws, sent = await _send_offer(server, "mallory", sdp)
    try:
        leave_reason = None
        refused_after = None
        while True:
            message = await ws.receive(timeout=10)
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            response = pb_rtc.SignalResponse.FromString(message.data)
            assert response.WhichOneof("message") != "answer"
            if response.WhichOneof("message") == "leave":
                refused_after = time.perf_counter() - sent
                leave_reason = response.leave.reason
        assert leave_reason == pb_models.STATE_MISMATCH
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert f"at most {MAX_MEDIA_SECTIONS} m-lines per description expected, got 7000" in str(message.extra)
    finally:
        await _close(ws)
    assert "mallory" not in server.rooms.rooms.get("attack", server.rooms.rooms["live"]).participants
    longest_stall = stalls.stop()
    await neighbour.check_since(mark, started)
    fraction = await _assert_kept_frames(neighbour, mark)
    assert refused_after is not None
    # Benchmark line (the timing is not asserted): ~1-2 s of stalled server before the limit.
    print(
        f"\n{len(sdp) // 1000} kB / 7000-m-line offer: refused {refused_after * 1000:.1f} ms after sending; "
        f"neighbour kept {fraction:.1%} of its frames; longest event-loop stall {longest_stall * 1000:.1f} ms"
    )


async def test_an_offer_at_the_limit_is_answered_and_the_neighbour_keeps_its_frames(
    server: Server, neighbour: LiveRoom
) -> None:
    mark, started = neighbour.mark(), time.monotonic()
    stalls = LoopStalls()
    ws, sent = await _send_offer(server, "bulky", offer(MAX_MEDIA_SECTIONS))
    try:
        while True:
            message = await ws.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.BINARY, message
            response = pb_rtc.SignalResponse.FromString(message.data)
            if response.WhichOneof("message") == "answer":
                answered_after = time.perf_counter() - sent
                break
        answer = parse_sdp(response.answer.sdp)
        assert [m.mid for m in answer.media] == [str(i) for i in range(MAX_MEDIA_SECTIONS)]
    finally:
        await _close(ws)
    longest_stall = stalls.stop()
    # The usual neighbour check (>= 90%): with this machine's own noise, a room with no offer
    # beside it has been seen to keep 94% over 4 s, so the strict bound stays on the refusal test.
    await neighbour.check_since(mark, started)
    assert neighbour.reader is not None
    fraction = in_order_fraction(neighbour.reader.counters[mark:])[0]
    print(
        f"\n{MAX_MEDIA_SECTIONS}-m-line offer answered {answered_after * 1000:.1f} ms after sending; "
        f"neighbour kept {fraction:.1%} of its frames; longest event-loop stall {longest_stall * 1000:.1f} ms"
    )
