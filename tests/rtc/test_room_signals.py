"""Room events from the server's signal messages and packets, entering where the wire client
hands them to the engine (RtcEngine.on_signal_message / on_data_packet, in the media process
by default) on connected rooms:
active speakers, connection quality, permissions, room metadata and transcriptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from data_peers import Peers, drain, peers, record, until_present, warm_up
from kitewire import rtc
from kitewire.engine.process import RemoteEngine
from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

__all__ = ["peers"]

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")]


async def _inject(room: rtc.Room, entry: str, *args: Any) -> None:
    """Hand ``args`` to the room's RtcEngine at ``entry``, wherever that engine runs."""
    engine = room._session.engine
    if isinstance(engine, RemoteEngine):
        await engine.call(entry, *args)  # the RtcEngine in the media process
    else:
        assert engine is not None
        getattr(engine, entry)(*args)


async def test_active_speakers_loudest_first(peers: Peers) -> None:
    room = await peers.kitewire("me")
    other = await peers.kitewire("other")
    await until_present(room, "other")
    events = record(room, "active_speakers_changed")
    me, them = room.local_participant, room.remote_participants["other"]
    message = signal_pb.SignalResponse()
    message.speakers_changed.speakers.add(sid=them.sid, level=0.4, active=True)
    message.speakers_changed.speakers.add(sid=me.sid, level=0.9, active=True)
    await _inject(room, "on_signal_message", message)
    (speakers,) = await asyncio.wait_for(events.get(), 5)
    assert [p.identity for p in speakers] == ["me", "other"]
    # a change names only who changed; the older server form comes as a data packet
    packet = models.DataPacket()
    packet.speaker.speakers.add(sid=me.sid, level=0.0, active=False)
    await _inject(room, "on_data_packet", packet, True)
    (speakers,) = await asyncio.wait_for(events.get(), 5)
    assert [p.identity for p in speakers] == ["other"]
    await other.disconnect()
    assert other.connection_state == rtc.ConnectionState.CONN_DISCONNECTED


async def test_connection_quality_changes_once_per_change(peers: Peers) -> None:
    room = await peers.kitewire("me")
    events = record(room, "connection_quality_changed")
    assert room.local_participant.connection_quality == rtc.ConnectionQuality.QUALITY_UNKNOWN
    # kitewire's server measures every participant and announces a newcomer's quality
    participant, quality = await asyncio.wait_for(events.get(), 10)
    assert (participant.identity, quality) == ("me", rtc.ConnectionQuality.QUALITY_EXCELLENT)
    assert room.local_participant.connection_quality == rtc.ConnectionQuality.QUALITY_EXCELLENT
    # the same quality again (and one for a participant nobody knows) is no change: no event
    message = signal_pb.SignalResponse()
    message.connection_quality.updates.add(participant_sid=room.local_participant.sid, quality=models.EXCELLENT)
    message.connection_quality.updates.add(participant_sid="PA_unknown", quality=models.POOR)
    await _inject(room, "on_signal_message", message)
    await asyncio.sleep(0.1)
    assert events.empty()
    # a change is one event
    message.connection_quality.updates[0].quality = models.GOOD
    await _inject(room, "on_signal_message", message)
    await _inject(room, "on_signal_message", message)  # the same again: no second event
    participant, quality = await asyncio.wait_for(events.get(), 5)
    assert (participant.identity, quality) == ("me", rtc.ConnectionQuality.QUALITY_GOOD)
    await asyncio.sleep(0.1)
    assert events.empty()


async def test_permissions_and_room_metadata(peers: Peers) -> None:
    room = await peers.kitewire("me")
    other = await peers.kitewire("other")
    await until_present(room, "other")
    permissions = record(room, "participant_permissions_changed")
    metadata = record(room, "room_metadata_changed")
    info = models.ParticipantInfo()
    info.CopyFrom(room.remote_participants["other"]._info)
    info.permission.can_publish = False
    info.version += 1
    update = signal_pb.SignalResponse()
    update.update.participants.append(info)
    await _inject(room, "on_signal_message", update)
    participant, permission = await asyncio.wait_for(permissions.get(), 5)
    assert participant.identity == "other" and permission.can_publish is False
    assert room.remote_participants["other"].permissions.can_publish is False
    room_update = signal_pb.SignalResponse()
    room_update.room_update.room.CopyFrom(room._session.info)
    room_update.room_update.room.metadata = "new room metadata"
    await _inject(room, "on_signal_message", room_update)
    assert await asyncio.wait_for(metadata.get(), 5) == ("", "new room metadata")
    assert room.metadata == "new room metadata"
    await other.disconnect()


async def test_transcriptions_are_sent_and_received(peers: Peers) -> None:
    sender = await peers.kitewire("sender")
    receiver = await peers.kitewire("receiver")
    await warm_up([sender, receiver])
    sent: list[models.DataPacket] = []
    real_send = sender._session.data.send

    async def keep(packet: models.DataPacket, *, reliable: bool) -> None:
        sent.append(packet)
        await real_send(packet, reliable=reliable)

    sender._session.data.send = keep
    segment = rtc.TranscriptionSegment(id="s1", text="hello", start_time=10, end_time=20, language="en", final=True)
    await sender.local_participant.publish_transcription(rtc.Transcription("sender", "TR_x", [segment]))
    (packet,) = sent
    assert packet.transcription.transcribed_participant_identity == "sender"
    assert packet.transcription.track_id == "TR_x"
    assert [(s.id, s.text, s.start_time, s.end_time, s.final, s.language) for s in packet.transcription.segments] == [
        ("s1", "hello", 10, 20, True, "en")
    ]
    # what a server delivers (livekit-server forwards an agent's transcriptions like this)
    events = record(receiver, "transcription_received")
    delivered = models.DataPacket()
    delivered.CopyFrom(packet)
    delivered.participant_identity = "sender"
    await _inject(receiver, "on_data_packet", delivered, True)
    segments, participant, publication = await asyncio.wait_for(events.get(), 5)
    assert segments == [segment]
    assert participant is receiver.remote_participants["sender"] and publication is None
    drain(events)


async def test_data_rpc_and_streams_work_again_after_a_reconnect(peers: Peers, server: Any, room_name: str) -> None:
    kite, official = await peers.pair(("kitewire", "kite"), ("official", "official"))
    kite.local_participant.register_rpc_method("where", lambda data: "kite")
    reconnected = asyncio.Event()
    kite.on("reconnected", reconnected.set)
    await server.rooms.rooms[room_name].participants["kite"].connection.websocket.close()
    await asyncio.wait_for(reconnected.wait(), 20)
    await warm_up([kite, official])
    # data both ways, RPC both ways (handlers survive the rejoin), a stream
    calling: Any = official.local_participant
    assert await calling.perform_rpc(destination_identity="kite", method="where", payload="") == "kite"
    official_local: Any = official.local_participant
    official_local.register_rpc_method("where", lambda data: "official")
    answer = await kite.local_participant.perform_rpc(destination_identity="official", method="where", payload="")
    assert answer == "official"
    texts: asyncio.Queue[str] = asyncio.Queue()

    async def read(reader: Any) -> None:
        texts.put_nowait(await reader.read_all())

    tasks: list[asyncio.Task[None]] = []
    official.register_text_stream_handler(
        "t", lambda reader, identity: tasks.append(asyncio.ensure_future(read(reader)))
    )
    await kite.local_participant.send_text("after the rejoin", topic="t")
    assert await asyncio.wait_for(texts.get(), 10) == "after the rejoin"
