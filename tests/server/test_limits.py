"""Bounds of limits.py: the token bucket, and a client offering faster than it allows."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from kitewire.server import Server
from kitewire.server.limits import OFFER_BURST, RateLimit
from kitewire.signal import create_token
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .test_big_offers import offer

pytestmark = pytest.mark.timeout(60)


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    bucket = RateLimit(3, 2.0)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(10.4) is False, "0.8 tokens after 0.4 s"
    assert bucket.take(10.5) is True
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)
    assert bucket.take(100.0) is False, "refill stops at the burst"


def test_a_clock_going_back_refills_nothing() -> None:
    bucket = RateLimit(1, 1.0)
    assert bucket.take(5.0) and not bucket.take(4.0) and not bucket.take(4.5)


@pytest.mark.parametrize(("burst", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("inf")), (1, float("nan"))])
def test_a_bucket_that_cannot_work_is_refused(burst: int, rate: float) -> None:
    with pytest.raises(ValueError, match="RateLimit: expected burst >= 1"):
        RateLimit(burst, rate)


async def test_a_client_offering_in_a_loop_is_disconnected_with_the_reason(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "kitewire.server")
    token = create_token("devkey", "secret", identity="flooder", room="flood")
    sdp = offer(1)
    sent = OFFER_BURST * 2
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.url}/rtc", params={"access_token": token, "protocol": "16"}) as ws,
    ):
        join = pb_rtc.SignalResponse.FromString((await ws.receive(timeout=10)).data)
        assert join.WhichOneof("message") == "join"
        for offer_id in range(1, sent + 1):
            request = pb_rtc.SignalRequest(offer=pb_rtc.SessionDescription(type="offer", sdp=sdp, id=offer_id))
            await ws.send_bytes(request.SerializeToString())
        answers = 0
        leave: pb_rtc.LeaveRequest | None = None
        while leave is None:
            message = await ws.receive(timeout=20)
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            response = pb_rtc.SignalResponse.FromString(message.data)
            if response.WhichOneof("message") == "answer":
                answers += 1
            elif response.WhichOneof("message") == "leave":
                leave = response.leave
    assert leave is not None and leave.reason == pb_models.STATE_MISMATCH
    # The burst is answered; the refill while they are handled (OFFERS_PER_SECOND) may add a few.
    assert OFFER_BURST <= answers < sent, f"{answers} of {sent} offers answered"
    refusals = [r.getMessage() for r in caplog.records if "event=refused" in r.getMessage()]
    assert any("request=offer" in line and f"at most {OFFER_BURST} offers" in line for line in refusals), refusals
    for _ in range(100):
        room = server.rooms.rooms.get("flood")
        if room is None or "flooder" not in room.participants:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the flooder is still in its room")
