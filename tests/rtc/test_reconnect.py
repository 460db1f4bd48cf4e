"""Full reconnect: a lost signal connection brings the Room back (rejoin, new
PeerConnections, tracks republished) with livekit's reconnecting/reconnected events.

The network loss is simulated from the server side, as the server's own suite
does: the participant's signal WebSocket is closed through the server's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from kitewire import rtc
from kitewire.frames.pattern import read_frame_counter
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from test_room_e2e import CAMERA, Capture, publishing, subscribed_future

pytestmark = pytest.mark.timeout(90)

RoomFactory = Callable[..., Awaitable[rtc.Room]]


class RoomEvents:
    """Records a room's connection events in order."""

    def __init__(self, room: rtc.Room) -> None:
        self.names: list[str] = []
        self.states: list[int] = []
        self.reconnected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnect_reasons: list[int] = []
        room.on("reconnecting", lambda: self.names.append("reconnecting"))
        room.on("reconnected", self._on_reconnected)
        room.on("connection_state_changed", self.states.append)
        room.on("disconnected", self._on_disconnected)

    def _on_reconnected(self) -> None:
        self.names.append("reconnected")
        self.reconnected.set()

    def _on_disconnected(self, reason: int) -> None:
        self.names.append("disconnected")
        self.disconnect_reasons.append(reason)
        self.disconnected.set()


async def cut_signal(server: Server, room_name: str, identity: str) -> str:
    """Close ``identity``'s signal socket from the server side; returns its server sid."""
    participant = server.rooms.rooms[room_name].participants[identity]
    await participant.connection.websocket.close()
    return str(participant.sid)


async def fail_subscriber_connection(server: Server, room_name: str, identity: str) -> str:
    """Close the PeerConnection ``identity`` receives on (the subscriber one, or the only one
    of a /rtc/v1 join) on the server: the client's side sees DTLS end and the connection
    fail while its signal socket stays up."""
    participant = server.rooms.rooms[room_name].participants[identity]
    pc = participant.publisher_pc if participant.single_pc else participant.subscriber_pc
    assert pc is not None
    await pc.close()
    return str(participant.sid)


async def counters_from(stream: rtc.VideoStream, count: int, timeout: float) -> list[int]:
    """Frame counters readable in the next ``count`` frames (fewer on timeout or end)."""
    counters: list[int] = []

    async def run() -> None:
        seen = 0
        async for event in stream:
            seen += 1
            counter = read_frame_counter(event.frame)
            if counter is not None:
                counters.append(counter)
            if seen >= count:
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(run(), timeout)
    return counters


async def drain_until_end(stream: rtc.VideoStream) -> None:
    """Read ``stream`` until its iteration ends (the caller bounds the time)."""
    async for _ in stream:
        pass


@contextlib.asynccontextmanager
async def capturing(source: rtc.VideoSource) -> AsyncIterator[Capture]:
    capture = Capture(source, fps=20).start()
    try:
        yield capture
    finally:
        await capture.stop()


@pytest.mark.parametrize(
    ("loss", "auto_subscribe"),
    [("signal", True), ("peer_connection", True), ("signal", False)],
    ids=["signal", "peer-connection", "signal-manual-subscription"],
)
async def test_viewer_connection_loss_reconnects_and_the_same_track_keeps_streaming(
    connect_room: RoomFactory, server: Server, room_name: str, loss: str, auto_subscribe: bool
) -> None:
    viewer = await connect_room("viewer", rtc.RoomOptions(auto_subscribe=auto_subscribe))
    subscribed = subscribed_future(viewer)
    if not auto_subscribe:
        # subscribed by hand: after the rejoin the room must ask for it again
        viewer.on("track_published", lambda pub, p: pub.set_subscribed(True))
    publisher = await connect_room("publisher")
    async with publishing(publisher) as (source, _), capturing(source) as capture:
        track, publication, participant = await asyncio.wait_for(subscribed, 15)
        stream = rtc.VideoStream(track)
        follower = rtc.VideoStream.from_participant(participant=participant, track_source=CAMERA, capacity=1)
        try:
            before = await counters_from(stream, 10, 10)
            assert len(before) >= 5, f"only {len(before)} counters before the drop"
            events = RoomEvents(viewer)
            resubscribed: list[rtc.Track] = []
            viewer.on("track_subscribed", lambda t, pub, p: resubscribed.append(t))
            old_server_side = server.rooms.rooms[room_name].participants["viewer"]
            server_side_closed_at_reconnecting: list[bool] = []
            viewer.on("reconnecting", lambda: server_side_closed_at_reconnecting.append(bool(old_server_side.closed)))
            if loss == "signal":
                old_sid = await cut_signal(server, room_name, "viewer")
            else:
                old_sid = await fail_subscriber_connection(server, room_name, "viewer")
            await asyncio.wait_for(events.reconnected.wait(), 15)

            assert events.names == ["reconnecting", "reconnected"]
            assert events.states == [rtc.ConnectionState.CONN_RECONNECTING, rtc.ConnectionState.CONN_CONNECTED]
            assert viewer.connection_state == rtc.ConnectionState.CONN_CONNECTED and viewer.isconnected()
            new_server_side = server.rooms.rooms[room_name].participants["viewer"]
            assert new_server_side.sid != old_sid and old_server_side.closed
            if loss == "peer_connection":
                # the signal was still up: the failed PeerConnection alone started it
                assert server_side_closed_at_reconnecting == [False]
            assert viewer.local_participant.sid == new_server_side.sid
            # the publisher never left: same objects, same track, same stream
            assert viewer.remote_participants["publisher"] is participant
            assert participant.track_publications[publication.sid] is publication
            assert publication.track is track and publication.subscribed

            cut_at = capture.next_index
            after = await counters_from(stream, 30, 15)
            fresh = [c for c in after if c >= cut_at % 4096]
            assert len(fresh) >= 10, f"{len(fresh)} counters decoded after the reconnect ({after[:5]}...)"
            followed = await counters_from(follower, 10, 10)
            assert any(c >= cut_at % 4096 for c in followed), "from_participant stream stopped after the reconnect"
            assert resubscribed == []  # the track object carried on
        finally:
            await stream.aclose()
            await follower.aclose()


async def test_publisher_signal_drop_republishes_and_video_flows_again(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    viewer = await connect_room("viewer")
    tracks: asyncio.Queue[rtc.RemoteVideoTrack] = asyncio.Queue()
    viewer.on(
        "track_subscribed", lambda t, pub, p: tracks.put_nowait(t) if isinstance(t, rtc.RemoteVideoTrack) else None
    )
    publisher = await connect_room("publisher")
    events = RoomEvents(publisher)
    republished: list[tuple[rtc.LocalTrackPublication, str]] = []
    publisher.on("local_track_republished", lambda pub, previous: republished.append((pub, previous)))
    async with publishing(publisher) as (source, local_publication), capturing(source) as capture:
        first = await asyncio.wait_for(tracks.get(), 15)
        first_stream = rtc.VideoStream(first)
        try:
            assert len(await counters_from(first_stream, 10, 10)) >= 5
            old_track_sid = local_publication.sid
            await cut_signal(server, room_name, "publisher")
            await asyncio.wait_for(events.reconnected.wait(), 15)
            assert events.names == ["reconnecting", "reconnected"]
            assert events.states == [rtc.ConnectionState.CONN_RECONNECTING, rtc.ConnectionState.CONN_CONNECTED]
            # same publication object, new sid, still fed by the same VideoSource
            assert republished == [(local_publication, old_track_sid)]
            assert local_publication.sid != old_track_sid
            assert publisher.local_participant.track_publications == {local_publication.sid: local_publication}
            assert local_publication.track is not None and local_publication.track.sid == local_publication.sid

            # the viewer saw the publisher leave and come back with a new track
            second = await asyncio.wait_for(tracks.get(), 15)
            assert second.sid == local_publication.sid
            # the stream on the old track sid ended
            await asyncio.wait_for(drain_until_end(first_stream), 10)
            cut_at = capture.next_index
            second_stream = rtc.VideoStream(second)
            try:
                after = await counters_from(second_stream, 30, 15)
            finally:
                await second_stream.aclose()
            fresh = [c for c in after if c >= cut_at % 4096]
            assert len(fresh) >= 10, f"{len(fresh)} counters decoded after the reconnect"
        finally:
            await first_stream.aclose()


async def test_a_track_the_user_unsubscribed_stays_unsubscribed_after_a_reconnect(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    viewer = await connect_room("viewer")
    subscribed = subscribed_future(viewer)
    publisher = await connect_room("publisher")
    async with publishing(publisher) as (source, _), capturing(source):
        track, publication, _participant = await asyncio.wait_for(subscribed, 15)
        stream = rtc.VideoStream(track)
        publication.set_subscribed(False)
        await asyncio.wait_for(drain_until_end(stream), 10)
        subscriptions: list[str] = []
        viewer.on("track_subscribed", lambda t, pub, p: subscriptions.append(pub.sid))
        events = RoomEvents(viewer)
        await cut_signal(server, room_name, "viewer")
        await asyncio.wait_for(events.reconnected.wait(), 15)
        server_side = server.rooms.rooms[room_name].participants["viewer"]
        deadline = time.monotonic() + 10
        while server_side.subscriptions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not server_side.subscriptions, "the viewer's unsubscription was not restored"
        await asyncio.sleep(0.5)
        assert subscriptions == [] and not publication.subscribed and publication.track is None
        # and asking again still works on the new session
        resubscribed = subscribed_future(viewer)
        publication.set_subscribed(True)
        again, _, _ = await asyncio.wait_for(resubscribed, 15)
        again_stream = rtc.VideoStream(again)
        try:
            assert len(await counters_from(again_stream, 10, 10)) >= 5
        finally:
            await again_stream.aclose()


async def test_user_disconnect_never_reconnects(connect_room: RoomFactory, server: Server, room_name: str) -> None:
    room = await connect_room("leaver")
    events = RoomEvents(room)
    await room.disconnect()
    await asyncio.sleep(1.0)  # long enough for a (wrong) rejoin attempt to reach the server
    assert events.names == ["disconnected"]
    assert events.states == [rtc.ConnectionState.CONN_DISCONNECTED]
    assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED and not room.isconnected()
    live = server.rooms.rooms.get(room_name)
    assert live is None or "leaver" not in live.participants


async def test_server_leave_without_reconnect_disconnects(
    connect_room: RoomFactory, server: Server, room_name: str
) -> None:
    room = await connect_room("removed")
    events = RoomEvents(room)
    participant = server.rooms.rooms[room_name].participants["removed"]
    await participant.close("removed by the test", int(rtc.DisconnectReason.PARTICIPANT_REMOVED))
    await asyncio.wait_for(events.disconnected.wait(), 10)
    await asyncio.sleep(0.5)
    assert events.names == ["disconnected"]
    assert events.disconnect_reasons == [rtc.DisconnectReason.PARTICIPANT_REMOVED]
    assert "removed" not in server.rooms.rooms.get(room_name, participant.room).participants


async def test_user_disconnect_while_reconnecting_stops_the_retries() -> None:
    server = Server(ServerConfig.dev(port=0, log_level="warning"))
    await server.start()
    room = rtc.Room()
    room.reconnect_timeout = 30.0
    try:
        await room.connect(server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="quitter", room="q"))
        events = RoomEvents(room)
        await cut_signal(server, "q", "quitter")
        await server.stop()
        while "reconnecting" not in events.names:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # a few failing attempts
        assert room.connection_state == rtc.ConnectionState.CONN_RECONNECTING
        await asyncio.wait_for(room.disconnect(), 5)
        assert events.names == ["reconnecting", "disconnected"]
        assert events.disconnect_reasons == [rtc.DisconnectReason.CLIENT_INITIATED]
        assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
        await asyncio.sleep(0.5)
        assert events.names == ["reconnecting", "disconnected"]
        assert not room._session.reconnecting  # nothing is left retrying
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        await server.stop()


async def test_server_gone_for_good_ends_in_disconnected_within_the_retry_bound() -> None:
    server = Server(ServerConfig.dev(port=0, log_level="warning"))
    await server.start()
    room = rtc.Room()
    room.reconnect_timeout = 3.0
    try:
        await room.connect(
            server.url, create_token(DEV_API_KEY, DEV_API_SECRET, identity="lonely", room="gone"), rtc.RoomOptions()
        )
        events = RoomEvents(room)
        source = rtc.VideoSource(320, 240)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=CAMERA))
        started = time.monotonic()
        await cut_signal(server, "gone", "lonely")
        await server.stop()
        await asyncio.wait_for(events.disconnected.wait(), room.reconnect_timeout + 10)
        elapsed = time.monotonic() - started
        assert events.names[0] == "reconnecting" and events.names[-1] == "disconnected"
        assert "reconnected" not in events.names
        assert events.states[0] == rtc.ConnectionState.CONN_RECONNECTING
        assert events.states[-1] == rtc.ConnectionState.CONN_DISCONNECTED
        assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED and not room.isconnected()
        # the retry bound plus one connect attempt's timeout at most
        assert elapsed < room.reconnect_timeout + 5.5, f"took {elapsed:.1f} s"
        await source.aclose()
    finally:
        await asyncio.wait_for(room.disconnect(), 10)
        await server.stop()
