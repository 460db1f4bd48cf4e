"""Room: a connection to a LiveKit room, with livekit.rtc's events and properties."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._exit_guard import LoopExitGuard
from ._session import RoomSession
from ._types import (
    ConnectError,
    ConnectionState,
    DataStreamOptions,
    DisconnectReason,
    RoomOptions,
    RtcConfiguration,
)
from .data_packet import DataPacket, SipDTMF
from .data_stream import ByteStreamHandler, TextStreamHandler
from .e2ee import E2EEManager
from .event_emitter import EventEmitter
from .participant import LocalParticipant, Participant, RemoteParticipant
from .stats import SessionRtcStats as RtcStats

logger = logging.getLogger("kitewire.rtc")

EventTypes = Literal[
    "participant_connected",
    "participant_disconnected",
    "local_track_published",
    "local_track_unpublished",
    "local_track_subscribed",
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "track_subscription_failed",
    "track_muted",
    "track_unmuted",
    "room_metadata_changed",
    "participant_metadata_changed",
    "participant_name_changed",
    "connection_state_changed",
    "connected",
    "disconnected",
    "reconnecting",
    "reconnected",
    "local_track_republished",
    "room_updated",
    "participant_attributes_changed",
    "participant_permissions_changed",
    "active_speakers_changed",
    "connection_quality_changed",
    "data_received",
    "sip_dtmf_received",
    "transcription_received",
    "e2ee_state_changed",
    "participant_encryption_status_changed",
]

# A full reconnect (fresh join, new PeerConnections, tracks republished) is tried
# for this long after the connection is lost; then the room is disconnected.
_RECONNECT_TIMEOUT = 10.0


class Room(EventEmitter[EventTypes]):
    """A LiveKit room: connect with a URL and token, then publish and receive video.

    Events (``@room.on(name)``), with livekit.rtc's argument orders:
    participant_connected(participant), participant_disconnected(participant),
    local_track_published(publication, track), local_track_unpublished(publication),
    track_published(publication, participant), track_unpublished(publication, participant),
    track_subscribed(track, publication, participant),
    track_unsubscribed(track, publication, participant),
    track_muted(participant, publication), track_unmuted(participant, publication),
    connection_state_changed(state), connected(), disconnected(reason),
    reconnecting(), reconnected(), local_track_republished(publication, previous_sid),
    participant_metadata_changed(participant, old, new), participant_name_changed(participant, old, new),
    participant_attributes_changed(changed_attributes, participant),
    participant_permissions_changed(participant, permissions), room_metadata_changed(old, new),
    active_speakers_changed(speakers), connection_quality_changed(participant, quality),
    data_received(DataPacket), sip_dtmf_received(SipDTMF),
    transcription_received(segments, participant, publication),
    e2ee_state_changed(participant, state) (an EncryptionState: a track's frames failed to
    decrypt, a key is missing, a ratchet step opened them, or they are OK again),
    participant_encryption_status_changed(participant, is_encrypted) (all its tracks encrypted or not).

    Reconnection (run by the engine, ``kitewire.engine.ReconnectingEngine``): when the
    signal connection drops or a PeerConnection fails while connected (and the server
    did not send a leave forbidding it), the room goes to ``CONN_RECONNECTING`` and
    emits ``reconnecting``, then rejoins from scratch with the same URL, token and options (retrying with backoff for up
    to ``reconnect_timeout`` seconds, else ``disconnected``): new PeerConnections,
    local tracks republished from the same sources (the same
    LocalTrackPublication objects, with the new sids; ``local_track_republished``),
    remote participants reconciled with the new JoinResponse, then
    ``reconnected``. A remote track whose sid is unchanged keeps its
    RemoteVideoTrack object and VideoStreams on it keep yielding once media flows
    again (no second ``track_subscribed``); a track whose sid changed (its
    publisher rejoined too) ends like an unpublished one. ``from_participant``
    streams follow the participant either way.
    """

    reconnect_timeout: float = _RECONNECT_TIMEOUT

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = loop
        # everything behind the public surface: state, engine events, reconnection handling
        self._session = RoomSession(self._emit_event, lambda: self.reconnect_timeout)
        self._exit_guard: LoopExitGuard | None = None

    def _emit_event(self, event: EventTypes, *args: Any) -> None:
        """Emit one of the session's events. A handler's TypeError (which :meth:`emit`
        raises, as livekit's does) is logged here, as livekit's room event loop logs
        it, so a handler with a wrong signature cannot stop the room's own work."""
        try:
            self.emit(event, *args)
        except Exception:
            logger.exception("error running user callback for %s", event)

    # -- properties --------------------------------------------------------------

    @property
    async def sid(self) -> str:
        """The room's server-assigned sid (awaitable, as in livekit.rtc)."""
        if not self._session.info.sid and self._session.connection_state == ConnectionState.CONN_DISCONNECTED:
            raise RuntimeError("cannot get the sid of a room that is not connected")
        return str(self._session.info.sid)

    @property
    def name(self) -> str:
        """The room's name."""
        return str(self._session.info.name)

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return str(self._session.info.metadata)

    @property
    def num_participants(self) -> int:
        """Participants in the room, as last reported by the server."""
        return int(self._session.info.num_participants)

    @property
    def num_publishers(self) -> int:
        """Participants publishing tracks, as last reported by the server."""
        return int(self._session.info.num_publishers)

    @property
    def creation_time(self) -> datetime.datetime:
        """When the room was created on the server."""
        millis = int(getattr(self._session.info, "creation_time_ms", 0)) or int(self._session.info.creation_time) * 1000
        return datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)

    @property
    def is_recording(self) -> bool:
        """Whether the server is recording the room."""
        return bool(self._session.info.active_recording)

    @property
    def departure_timeout(self) -> float:
        """Seconds the room stays open after the last participant leaves."""
        return float(self._session.info.departure_timeout)

    @property
    def empty_timeout(self) -> float:
        """Seconds an empty room stays open if nobody joins."""
        return float(self._session.info.empty_timeout)

    @property
    def e2ee_manager(self) -> E2EEManager:
        """The room's end-to-end encryption (keys, frame cryptors); disabled unless
        connected with ``RoomOptions(encryption=E2EEOptions(...))``."""
        return self._session.e2ee

    @property
    def local_participant(self) -> LocalParticipant:
        """This client's participant; raises before connect."""
        if self._session.local_participant is None:
            raise Exception("cannot access local participant before connecting")
        return self._session.local_participant

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """Other participants by identity."""
        return self._session.remote_participants

    @property
    def connection_state(self) -> int:
        """A ``ConnectionState``."""
        return self._session.connection_state

    def isconnected(self) -> bool:
        """True while connected to the server."""
        return self._session.connected()

    # -- incoming streams ----------------------------------------------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Call ``handler(reader, sender_identity)`` for each text stream opened on ``topic``.

        Raises ValueError when ``topic`` has a handler already."""
        handlers = self._session.data.streams.text_handlers
        if topic in handlers:
            raise ValueError(f"text stream handler for topic {topic!r} already set")
        handlers[topic] = handler

    def unregister_text_stream_handler(self, topic: str) -> None:
        """Stop taking text streams on ``topic`` (later ones are ignored)."""
        self._session.data.streams.text_handlers.pop(topic, None)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Call ``handler(reader, sender_identity)`` for each byte stream opened on ``topic``.

        Raises ValueError when ``topic`` has a handler already."""
        handlers = self._session.data.streams.byte_handlers
        if topic in handlers:
            raise ValueError(f"byte stream handler for topic {topic!r} already set")
        handlers[topic] = handler

    def unregister_byte_stream_handler(self, topic: str) -> None:
        """Stop taking byte streams on ``topic`` (later ones are ignored)."""
        self._session.data.streams.byte_handlers.pop(topic, None)

    def on(self, event: EventTypes, callback: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """Register a callback for a room event (see the class docstring)."""
        return super().on(event, callback)

    # -- connect / disconnect ----------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions = RoomOptions()) -> None:  # noqa: B008 (livekit.rtc's signature)
        """Join the room at ``url`` with ``token``. Raises ConnectError on failure."""
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
        if not isinstance(token, str) or not token:
            raise ValueError(f"expected a non-empty access token string, got {token!r}")
        if not isinstance(options, RoomOptions):
            raise ValueError(f"expected options to be a RoomOptions, got {type(options).__name__}")
        if self.isconnected():
            raise ConnectError("the room is already connected")
        await self._session.connect(url, token, options)
        if self._exit_guard is not None:
            self._exit_guard.disarm()
        # a room the program never disconnects is closed when asyncio.run() ends
        self._exit_guard = LoopExitGuard(self.isconnected, self._session_disconnect)

    async def get_rtc_stats(self) -> RtcStats:
        """WebRTC statistics of everything this room sends (``publisher_stats``) and
        receives (``subscriber_stats``), in livekit's shape (see :mod:`kitewire.rtc.stats`).

        Raises ``RuntimeError`` when the room is not connected, as livekit does."""
        return await self._session.rtc_stats()

    async def disconnect(self, *, reason: int = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room. Streams on its tracks end. Safe to call when not connected."""
        if self._exit_guard is not None:
            self._exit_guard.disarm()
            self._exit_guard = None
        await self._session.disconnect(reason)

    async def _session_disconnect(self) -> None:
        await self._session.disconnect(DisconnectReason.CLIENT_INITIATED)

    def __repr__(self) -> str:
        return f"rtc.Room(name={self.name}, connection_state={ConnectionState.Name(self._session.connection_state)})"


__all__ = [
    "ConnectError",
    "DataPacket",
    "DataStreamOptions",
    "EventTypes",
    "Participant",
    "Room",
    "RoomOptions",
    "RtcConfiguration",
    "RtcStats",
    "SipDTMF",
]
