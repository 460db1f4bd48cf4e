"""Odd or hostile signal input: ignored or answered with a disconnect and a reason, never a crash."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kitewire.server import Server, ServerConfig
from kitewire.signal import SignalClient, connect, create_token
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

pytestmark = pytest.mark.timeout(120)


def _request(**fields: object) -> pb_rtc.SignalRequest:
    return pb_rtc.SignalRequest(**fields)  # type: ignore[arg-type]


IGNORED = {
    "empty": pb_rtc.SignalRequest(),
    "answer without offer": _request(answer=pb_rtc.SessionDescription(type="answer", sdp="v=0")),
    "unknown subscription": _request(
        subscription=pb_rtc.UpdateSubscription(track_sids=["TR_nope", ""], subscribe=True)
    ),
    "unknown track setting": _request(
        track_setting=pb_rtc.UpdateTrackSettings(track_sids=["TR_x"], width=99999, height=1, quality=7)  # type: ignore[arg-type]
    ),
    "unknown mute": _request(mute=pb_rtc.MuteTrackRequest(sid="TR_zzz", muted=True)),
    "unknown layers": _request(update_layers=pb_rtc.UpdateVideoLayers(track_sid="TR_q")),
    "sync state": _request(sync_state=pb_rtc.SyncState()),
    "empty trickle": _request(trickle=pb_rtc.TrickleRequest(candidateInit="")),
    "metadata without permission": _request(update_metadata=pb_rtc.UpdateParticipantMetadata(metadata="x")),
    "add_track without cid": _request(add_track=pb_rtc.AddTrackRequest(type=pb_models.VIDEO)),
    "trickle that is not JSON": _request(
        trickle=pb_rtc.TrickleRequest(candidateInit="{{{", target=pb_rtc.SignalTarget.SUBSCRIBER)
    ),
    "trickle with a bad candidate": _request(
        trickle=pb_rtc.TrickleRequest(
            candidateInit='{"candidate": "candidate:x", "sdpMid": "0"}', target=pb_rtc.SignalTarget.PUBLISHER
        )
    ),
}

DISCONNECTING = {
    "offer with garbage SDP": _request(offer=pb_rtc.SessionDescription(type="offer", sdp="this is not sdp")),
}


async def _still_alive(client: SignalClient) -> bool:
    ping = _request(ping=4242)
    await client.connection.send(ping)
    while True:
        message = await client.connection.receive(timeout=5)
        if message is None:
            return False
        if message.WhichOneof("message") == "pong":
            return message.pong == 4242


def _token(identity: str) -> str:
    return create_token("devkey", "secret", identity=identity, room="odd")


@pytest.mark.parametrize("name", sorted(IGNORED))
async def test_odd_requests_are_ignored(server: Server, name: str) -> None:
    client, _ = await connect(server.url, _token("odd"), legacy=True, keepalive=False)
    try:
        await client.connection.send(IGNORED[name])
        assert await _still_alive(client), f"{name} disconnected the client"
    finally:
        await client.close()


@pytest.mark.parametrize("name", sorted(DISCONNECTING))
async def test_bad_requests_disconnect_with_reason(server: Server, name: str) -> None:
    bystander, _ = await connect(server.url, _token("bystander"), legacy=True, keepalive=False)
    client, _ = await connect(server.url, _token("bad"), legacy=True, keepalive=False)
    try:
        await client.connection.send(DISCONNECTING[name])
        reason = None
        while True:
            message = await client.connection.receive(timeout=5)
            if message is None:
                break
            if message.WhichOneof("message") == "leave":
                reason = message.leave.reason
        assert reason == pb_models.STATE_MISMATCH
        assert await _still_alive(bystander)
    finally:
        await client.close()
        await bystander.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(min_size=1, max_size=300))
def test_random_bytes_never_crash_the_server(blob: bytes) -> None:
    async def scenario() -> None:
        async with Server(ServerConfig.dev(port=0, empty_timeout=0.1)) as server:
            client, _ = await connect(server.url, _token("fuzz"), legacy=True, keepalive=False)
            try:
                await client.connection.websocket.send_bytes(blob)
                # Whatever the bytes were, the server either ignores them or says goodbye.
                while True:
                    try:
                        message = await client.connection.receive(timeout=0.3)
                    except TimeoutError:
                        break
                    except ValueError:
                        break
                    if message is None:
                        break
            finally:
                await client.close()
            # ... and keeps serving new joins.
            other, join = await connect(server.url, _token("after"), legacy=True, keepalive=False)
            await other.close()
            assert join.participant.identity == "after"

    asyncio.run(scenario())
