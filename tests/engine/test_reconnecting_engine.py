"""ReconnectingEngine against a real kitewire server: a lost signal socket is rejoined with a fresh
RtcEngine (the listener restores it), a restore that fails is retried, a server gone for good ends
in on_disconnected after the reconnect timeout, and a disconnect stops a rejoin under way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kitewire.engine import EngineError, JoinParameters, ReconnectingEngine
from kitewire.engine.handle import EngineHandle
from kitewire.server import Server, ServerConfig
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """A SessionListener that records what it is told, in order."""

    def __init__(self, failing_restores: int = 0) -> None:
        self.calls: list[str] = []
        self.rejoined: list[tuple[EngineHandle, signal_pb.JoinResponse]] = []
        self.reasons: list[int] = []
        self.failing_restores = failing_restores
        self.changed = asyncio.Event()

    def _note(self, name: str) -> None:
        self.calls.append(name)
        self.changed.set()

    async def wait_for(self, name: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while name not in self.calls:
                self.changed.clear()
                await self.changed.wait()

    def on_reconnecting(self) -> None:
        self._note("reconnecting")

    def on_session_dropped(self) -> None:
        self._note("dropped")

    async def on_rejoined(self, engine: EngineHandle, join: signal_pb.JoinResponse) -> None:
        self._note("rejoined")
        self.rejoined.append((engine, join))
        if self.failing_restores > 0:
            self.failing_restores -= 1
            raise EngineError("restore refused by the test")

    def on_reconnected(self) -> None:
        self._note("reconnected")

    def on_disconnected(self, reason: int) -> None:
        self.reasons.append(reason)
        self._note("disconnected")

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        pass

    def on_remote_video(self, track_sid: str, participant_sid: str) -> None:
        pass

    def on_remote_video_ended(self, track_sid: str) -> None:
        pass

    def on_remote_audio(self, track_sid: str, participant_sid: str) -> None:
        pass

    def on_remote_audio_ended(self, track_sid: str) -> None:
        pass

    def on_local_track_unpublished(self, track_sid: str) -> None:
        pass

    def on_local_track_subscribed(self, track_sid: str) -> None:
        pass

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        pass

    def on_room_update(self, room: models.Room) -> None:
        pass

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        pass

    def on_speakers_changed(self, speakers: list[models.SpeakerInfo]) -> None:
        pass

    def on_connection_quality(self, updates: list[signal_pb.ConnectionQualityInfo]) -> None:
        pass

    def on_e2ee_state(self, participant_identity: str, state: int) -> None:
        pass


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server(ServerConfig.dev(port=0, log_level="warning"))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def join(server: Server, recorder: Recorder, identity: str, timeout: float = 10.0) -> ReconnectingEngine:
    connector = ReconnectingEngine(recorder, lambda: timeout)
    token = create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room="rejoin")
    await connector.connect(JoinParameters(server.url, token, auto_subscribe=True, timeout=5.0))
    return connector


async def cut_signal(server: Server, identity: str) -> str:
    participant = server.rooms.rooms["rejoin"].participants[identity]
    await participant.connection.websocket.close()
    return str(participant.sid)


async def cut_signal_for_good(server: Server, identity: str) -> None:
    """Cut ``identity``'s signal socket and stop the server: every rejoin attempt fails."""
    await cut_signal(server, identity)
    await server.stop()


async def test_lost_signal_is_rejoined_with_a_fresh_engine(server: Server) -> None:
    recorder = Recorder()
    connector = await join(server, recorder, "alice")
    first = connector.engine
    assert first is not None and first.connected
    old_sid = await cut_signal(server, "alice")
    await recorder.wait_for("reconnected")
    assert recorder.calls == ["reconnecting", "dropped", "rejoined", "reconnected"]
    ((engine, response),) = recorder.rejoined
    assert engine is connector.engine and engine is not first
    assert engine.connected and not first.connected
    assert response.participant.identity == "alice" and response.participant.sid != old_sid
    assert not connector.reconnecting and not connector.ended
    await connector.disconnect(int(models.DisconnectReason.CLIENT_INITIATED))
    assert recorder.calls[-1] == "disconnected"
    assert recorder.reasons == [models.DisconnectReason.CLIENT_INITIATED]


async def test_a_failed_restore_is_retried_on_another_fresh_session(server: Server) -> None:
    recorder = Recorder(failing_restores=1)
    connector = await join(server, recorder, "bob")
    await cut_signal(server, "bob")
    await recorder.wait_for("reconnected")
    assert recorder.calls == ["reconnecting", "dropped", "rejoined", "dropped", "rejoined", "reconnected"]
    (refused, _), (kept, _) = recorder.rejoined
    assert refused is not kept and not refused.connected and kept.connected
    assert connector.engine is kept
    await connector.disconnect(int(models.DisconnectReason.CLIENT_INITIATED))


async def test_server_gone_ends_in_disconnected_after_the_timeout(server: Server) -> None:
    recorder = Recorder()
    connector = await join(server, recorder, "carol", timeout=1.5)
    await cut_signal_for_good(server, "carol")
    await recorder.wait_for("disconnected")
    assert recorder.calls[0] == "reconnecting"
    assert "rejoined" not in recorder.calls and "reconnected" not in recorder.calls
    assert recorder.calls.count("disconnected") == 1
    assert connector.ended and not connector.reconnecting
    await connector.disconnect(int(models.DisconnectReason.CLIENT_INITIATED))
    assert recorder.calls.count("disconnected") == 1


async def test_disconnect_stops_a_rejoin_under_way(server: Server) -> None:
    recorder = Recorder()
    connector = await join(server, recorder, "dave", timeout=30.0)
    await cut_signal_for_good(server, "dave")
    await recorder.wait_for("dropped")
    assert connector.reconnecting
    await asyncio.wait_for(connector.disconnect(int(models.DisconnectReason.CLIENT_INITIATED)), 5)
    assert not connector.reconnecting and connector.ended
    assert recorder.calls.count("disconnected") == 1
    assert recorder.reasons == [models.DisconnectReason.CLIENT_INITIATED]
    calls = list(recorder.calls)
    await asyncio.sleep(0.5)
    # nothing retries after the disconnect
    assert recorder.calls == calls and "rejoined" not in calls
