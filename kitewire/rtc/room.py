"""Room: a connection to a LiveKit room, with livekit.rtc's events and properties."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.engine import (
    EngineError,
    PublishedVideo,
    RtcEngine,
    VideoPublishPipeline,
    VideoReceivePipeline,
)
from kitewire.frames import VideoCodec

from ._types import (
    ConnectError,
    ConnectionState,
    DisconnectReason,
    PublishTrackError,
    RoomOptions,
    TrackPublishOptions,
    UnpublishTrackError,
)
from .event_emitter import EventEmitter
from .participant import LocalParticipant, Participant, RemoteParticipant
from .track import LocalVideoTrack, RemoteVideoTrack
from .track_publication import LocalTrackPublication, RemoteTrackPublication

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
]

_DEFAULT_CONNECT_TIMEOUT = 5.0
# A full reconnect (fresh join, new PeerConnections, tracks republished) is tried
# for this long after the connection is lost; then the room is disconnected.
_RECONNECT_TIMEOUT = 10.0
_RECONNECT_FIRST_DELAY = 0.1
_RECONNECT_MAX_DELAY = 2.0
_CODEC_NAMES = {int(VideoCodec.VP8): "VP8", int(VideoCodec.H264): "H264"}


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
    reconnecting(), reconnected(), local_track_republished(publication, previous_sid).

    Reconnection: when the signal connection drops or a PeerConnection fails
    while connected (and the server did not send a leave forbidding it), the room
    goes to ``CONN_RECONNECTING`` and emits ``reconnecting``, then rejoins from
    scratch with the same URL, token and options (retrying with backoff for up
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
        self._engine: RtcEngine | None = None
        self._info = models.Room()
        self._local_participant: LocalParticipant | None = None
        self._remote_participants: dict[str, RemoteParticipant] = {}
        self._connection_state: int = ConnectionState.CONN_DISCONNECTED
        self._options = RoomOptions()
        # subscribed media that arrived before the participant update announcing it
        self._unclaimed_videos: dict[str, tuple[str, VideoReceivePipeline]] = {}
        self._publish_pipelines: dict[str, VideoPublishPipeline] = {}
        self._subscribed_before_published: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._url = ""
        self._token = ""
        self._engine_events: _EngineEvents | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._publish_options: dict[str, TrackPublishOptions] = {}
        # remote tracks kept across a reconnect, waiting for their media to return
        self._awaiting_resubscribe: set[str] = set()
        self._unsubscribed_by_user: set[str] = set()

    # -- properties --------------------------------------------------------------

    @property
    async def sid(self) -> str:
        """The room's server-assigned sid (awaitable, as in livekit.rtc)."""
        if not self._info.sid and self._connection_state == ConnectionState.CONN_DISCONNECTED:
            raise RuntimeError("cannot get the sid of a room that is not connected")
        return str(self._info.sid)

    @property
    def name(self) -> str:
        """The room's name."""
        return str(self._info.name)

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return str(self._info.metadata)

    @property
    def num_participants(self) -> int:
        """Participants in the room, as last reported by the server."""
        return int(self._info.num_participants)

    @property
    def num_publishers(self) -> int:
        """Participants publishing tracks, as last reported by the server."""
        return int(self._info.num_publishers)

    @property
    def creation_time(self) -> datetime.datetime:
        """When the room was created on the server."""
        millis = int(getattr(self._info, "creation_time_ms", 0)) or int(self._info.creation_time) * 1000
        return datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)

    @property
    def is_recording(self) -> bool:
        """Whether the server is recording the room."""
        return bool(self._info.active_recording)

    @property
    def departure_timeout(self) -> float:
        """Seconds the room stays open after the last participant leaves."""
        return float(self._info.departure_timeout)

    @property
    def empty_timeout(self) -> float:
        """Seconds an empty room stays open if nobody joins."""
        return float(self._info.empty_timeout)

    @property
    def local_participant(self) -> LocalParticipant:
        """This client's participant; raises before connect."""
        if self._local_participant is None:
            raise Exception("cannot access local participant before connecting")
        return self._local_participant

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """Other participants by identity."""
        return self._remote_participants

    @property
    def connection_state(self) -> int:
        """A ``ConnectionState``."""
        return self._connection_state

    def isconnected(self) -> bool:
        """True while connected to the server."""
        return self._engine is not None and self._connection_state != ConnectionState.CONN_DISCONNECTED

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
        if options.e2ee is not None or options.encryption is not None:
            raise ValueError("expected e2ee/encryption to be None: kitewire has no end-to-end encryption")
        if self.isconnected():
            raise ConnectError("the room is already connected")
        self._options = options
        events = _EngineEvents(self)
        engine = RtcEngine(events)
        timeout = options.connect_timeout or _DEFAULT_CONNECT_TIMEOUT
        try:
            join = await engine.connect(
                url,
                token,
                auto_subscribe=options.auto_subscribe,
                timeout=timeout,
                single_peer_connection=options.single_peer_connection,
            )
        except EngineError as exc:
            raise ConnectError(str(exc)) from None
        self._url, self._token = url, token
        self._engine = engine
        self._engine_events = events
        self._info = join.room
        self._local_participant = LocalParticipant(join.participant, self)
        self._remote_participants = {}
        for info in join.other_participants:
            participant = RemoteParticipant(info)
            self._remote_participants[participant.identity] = participant
            for track_info in info.tracks:
                publication = RemoteTrackPublication(track_info, self, participant.sid)
                participant._track_publications[publication.sid] = publication
        self._set_state(ConnectionState.CONN_CONNECTED)
        self.emit("connected")

    async def disconnect(self, *, reason: int = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room. Streams on its tracks end. Safe to call when not connected."""
        engine = self._engine
        if engine is None or self._connection_state == ConnectionState.CONN_DISCONNECTED:
            return
        reconnecting = self._reconnect_task
        if reconnecting is not None and reconnecting is not asyncio.current_task():
            # a user disconnect ends any rejoin under way; that task closes its own engine
            reconnecting.cancel()
            await asyncio.gather(reconnecting, return_exceptions=True)
            engine = self._engine or engine
        await engine.disconnect(reason)
        # engine.disconnect reports through on_disconnected; this covers a lost race
        self._on_disconnected(reason)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _set_state(self, state: int) -> None:
        if state != self._connection_state:
            self._connection_state = state
            self.emit("connection_state_changed", state)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)

    def _task_finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, EngineError):
            # a request raced a disconnect: nothing left to do
            logger.debug("request not sent: %s", error)
        elif error is not None:
            logger.error("room background task failed", exc_info=error)

    # -- reconnection ------------------------------------------------------------

    def _on_connection_lost(self, reason: int) -> None:
        """Engine callback: the session broke in a way that may be rejoined."""
        if self._connection_state != ConnectionState.CONN_CONNECTED or self._reconnect_task is not None:
            return
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect(reason))

    async def _reconnect(self, reason: int) -> None:
        try:
            await self._reconnect_until_deadline(reason)
        except Exception:
            logger.exception("reconnecting failed")
            if self._engine_events is not None:
                self._engine_events.active = False
            if self._engine is not None:
                with contextlib.suppress(Exception):
                    await self._engine.abandon()
            self._on_disconnected(reason)
        finally:
            self._reconnect_task = None

    async def _reconnect_until_deadline(self, reason: int) -> None:
        loop = asyncio.get_running_loop()
        self._set_state(ConnectionState.CONN_RECONNECTING)
        self.emit("reconnecting")
        deadline = loop.time() + self.reconnect_timeout
        delay = _RECONNECT_FIRST_DELAY
        connect_timeout = self._options.connect_timeout or _DEFAULT_CONNECT_TIMEOUT
        while self._connection_state == ConnectionState.CONN_RECONNECTING:
            await self._drop_session()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _RECONNECT_MAX_DELAY)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            events = _EngineEvents(self)
            engine = RtcEngine(events)
            try:
                join = await engine.connect(
                    self._url,
                    self._token,
                    auto_subscribe=self._options.auto_subscribe,
                    timeout=min(remaining, connect_timeout),
                    single_peer_connection=self._options.single_peer_connection,
                )
            except EngineError as exc:
                logger.info("rejoin attempt failed: %s", exc)
                continue
            except asyncio.CancelledError:
                await engine.abandon()
                raise
            self._engine, self._engine_events = engine, events
            try:
                # synchronously, before the new session's first message is read
                self._reconcile_remote(join)
                await self._republish_local(engine)
            except EngineError as exc:
                logger.info("restoring the session failed: %s", exc)
                continue
            if events.lost or self._connection_state != ConnectionState.CONN_RECONNECTING:
                continue
            self._set_state(ConnectionState.CONN_CONNECTED)
            self.emit("reconnected")
            return
        if self._connection_state == ConnectionState.CONN_RECONNECTING:
            self._on_disconnected(reason)

    async def _drop_session(self) -> None:
        """Silence and close the current engine; keep the room's objects for the rejoin."""
        if self._engine_events is not None:
            self._engine_events.active = False
        if self._engine is not None:
            await self._engine.abandon()
        local = self._local_participant
        for sid, pipeline in list(self._publish_pipelines.items()):
            local_publication = local._track_publications.get(sid) if local is not None else None
            if local_publication is not None and local_publication.track is not None:
                local_publication.track._fanout.remove(pipeline)
        self._publish_pipelines.clear()
        self._unclaimed_videos.clear()
        self._subscribed_before_published.clear()
        for participant in self._remote_participants.values():
            for publication in participant._track_publications.values():
                if publication.track is not None:
                    self._awaiting_resubscribe.add(publication.sid)

    def _reconcile_remote(self, join: signal_pb.JoinResponse) -> None:
        """Bring participants and publications in line with a new JoinResponse."""
        engine = self._engine
        assert engine is not None
        self._info = join.room
        self.local_participant._update_info(join.participant)
        present = {info.identity: info for info in join.other_participants}
        for identity, participant in list(self._remote_participants.items()):
            if identity not in present:
                gone = models.ParticipantInfo()
                gone.CopyFrom(participant._info)
                gone.state = models.ParticipantInfo.DISCONNECTED
                self._remove_participant(gone)
        for info in join.other_participants:
            self._update_participant(info)
        # subscriptions the server will not restore by itself
        for participant in self._remote_participants.values():
            for publication in participant._track_publications.values():
                if publication.sid in self._awaiting_resubscribe and not self._options.auto_subscribe:
                    self._spawn(engine.update_subscription(publication.sid, True))
                elif publication.sid in self._unsubscribed_by_user and self._options.auto_subscribe:
                    self._spawn(engine.update_subscription(publication.sid, False))

    async def _republish_local(self, engine: RtcEngine) -> None:
        local = self.local_participant
        for publication in list(local._track_publications.values()):
            track = publication.track
            if track is None or publication.sid in self._publish_pipelines:
                continue
            options = self._publish_options.get(publication.sid) or TrackPublishOptions(source=publication.source)
            published = await self._engine_publish(engine, track, options)
            if local._track_publications.get(publication.sid) is not publication:
                # unpublished by the user while we negotiated
                await engine.unpublish_video(published.info.sid)
                continue
            previous_sid = publication.sid
            del local._track_publications[previous_sid]
            self._publish_options.pop(previous_sid, None)
            publication._update_info(published.info)
            local._track_publications[publication.sid] = publication
            self._wire_local_publication(publication, track, published.pipeline, options)
            if track.muted:
                self._spawn(engine.mute_track(publication.sid, True))
            self.emit("local_track_republished", publication, previous_sid)
            if publication.sid in self._subscribed_before_published:
                self._subscribed_before_published.discard(publication.sid)
                self._on_local_track_subscribed(publication.sid)

    # -- publishing (called by LocalParticipant) ---------------------------------

    @staticmethod
    async def _engine_publish(
        engine: RtcEngine, track: LocalVideoTrack, options: TrackPublishOptions
    ) -> PublishedVideo:
        source = track.source
        encoding = options.video_encoding
        return await engine.publish_video(
            cid=track._cid,
            name=track.name,
            source=int(options.source),
            width=source.width,
            height=source.height,
            codec=_CODEC_NAMES[int(options.video_codec)],
            simulcast=options.simulcast is not False,
            max_bitrate=int(encoding.max_bitrate) if encoding else 0,
            max_framerate=float(encoding.max_framerate) if encoding else 0.0,
        )

    def _wire_local_publication(
        self,
        publication: LocalTrackPublication,
        track: LocalVideoTrack,
        pipeline: VideoPublishPipeline,
        options: TrackPublishOptions,
    ) -> None:
        """Feed the track's frames into ``pipeline`` and forward mute changes."""
        track._sid = publication.sid
        pipeline.muted = track.muted
        self._publish_pipelines[publication.sid] = pipeline
        self._publish_options[publication.sid] = options
        track._fanout.add(pipeline)

        def on_mute_changed(muted: bool) -> None:
            pipeline.muted = muted
            if self._engine is not None and self.isconnected():
                self._spawn(self._engine.mute_track(publication.sid, muted))

        track._mute_listener = on_mute_changed

    async def _publish_track(self, track: LocalVideoTrack, options: TrackPublishOptions) -> LocalTrackPublication:
        engine = self._engine
        if engine is None or not self.isconnected():
            raise PublishTrackError("cannot publish a track: the room is not connected")
        try:
            published = await self._engine_publish(engine, track, options)
        except EngineError as exc:
            raise PublishTrackError(str(exc)) from None
        publication = LocalTrackPublication(published.info, track)
        self._wire_local_publication(publication, track, published.pipeline, options)
        local = self.local_participant
        local._track_publications[publication.sid] = publication
        self.emit("local_track_published", publication, track)
        local._track_available(track, publication.source)
        if publication.sid in self._subscribed_before_published:
            self._subscribed_before_published.discard(publication.sid)
            self._on_local_track_subscribed(publication.sid)
        return publication

    async def _unpublish_track(self, track_sid: str) -> None:
        local = self.local_participant
        publication = local._track_publications.get(track_sid)
        if publication is None:
            return
        self._finish_local_publication(publication)
        if self._engine is not None:
            try:
                await self._engine.unpublish_video(track_sid)
            except EngineError as exc:
                raise UnpublishTrackError(str(exc)) from None

    def _finish_local_publication(self, publication: LocalTrackPublication) -> None:
        local = self.local_participant
        if local._track_publications.pop(publication.sid, None) is None:
            return
        pipeline = self._publish_pipelines.pop(publication.sid, None)
        self._publish_options.pop(publication.sid, None)
        track = publication.track
        if track is not None:
            if pipeline is not None:
                track._fanout.remove(pipeline)
            track._mute_listener = None
            local._track_gone(track, publication.source)
        self.emit("local_track_unpublished", publication)
        publication._track = None

    # -- subscription requests (called by RemoteTrackPublication) ----------------

    def _request_subscription(self, publication: RemoteTrackPublication, subscribed: bool) -> None:
        engine = self._engine
        if engine is None or not self.isconnected():
            raise RuntimeError("cannot change a subscription: the room is not connected")
        self._spawn(engine.update_subscription(publication.sid, subscribed))
        # remembered so that a rejoin does not let auto_subscribe undo it
        if subscribed:
            self._unsubscribed_by_user.discard(publication.sid)
        else:
            self._unsubscribed_by_user.add(publication.sid)
        if not subscribed:
            self._spawn(engine.stop_remote_video(publication.sid))

    def _request_video_quality(self, publication: RemoteTrackPublication, quality: int) -> None:
        engine = self._engine
        if engine is None or not self.isconnected():
            raise RuntimeError("cannot change video quality: the room is not connected")
        self._spawn(engine.update_track_settings(publication.sid, quality))

    # -- engine events -----------------------------------------------------------

    def _participant_by_sid(self, sid: str) -> RemoteParticipant | None:
        for participant in self._remote_participants.values():
            if participant.sid == sid:
                return participant
        return None

    def _find_remote_publication(self, track_sid: str) -> tuple[RemoteParticipant, RemoteTrackPublication] | None:
        for participant in self._remote_participants.values():
            publication = participant._track_publications.get(track_sid)
            if publication is not None:
                return participant, publication
        return None

    def _on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        """Engine callback: the server's ParticipantUpdate."""
        local = self._local_participant
        for info in participants:
            if local is not None and (info.sid == local.sid or info.identity == local.identity):
                if info.state != models.ParticipantInfo.DISCONNECTED:
                    local._update_info(info)
                    for track_info in info.tracks:
                        local_publication = local._track_publications.get(track_info.sid)
                        if local_publication is not None:
                            local_publication._update_info(track_info)
                continue
            if info.state == models.ParticipantInfo.DISCONNECTED:
                self._remove_participant(info)
            else:
                self._update_participant(info)

    def _update_participant(self, info: models.ParticipantInfo) -> None:
        participant = self._remote_participants.get(info.identity)
        if participant is None:
            participant = RemoteParticipant(info)
            self._remote_participants[participant.identity] = participant
            self.emit("participant_connected", participant)
        else:
            old_metadata, old_name = participant.metadata, participant.name
            participant._update_info(info)
            if old_metadata != participant.metadata:
                self.emit("participant_metadata_changed", participant, old_metadata, participant.metadata)
            if old_name != participant.name:
                self.emit("participant_name_changed", participant, old_name, participant.name)
        announced = {track.sid: track for track in info.tracks}
        for sid in [sid for sid in participant._track_publications if sid not in announced]:
            self._remove_publication(participant, sid)
        for sid, track_info in announced.items():
            publication = participant._track_publications.get(sid)
            if publication is None:
                publication = RemoteTrackPublication(track_info, self, participant.sid)
                participant._track_publications[sid] = publication
                self.emit("track_published", publication, participant)
                unclaimed = self._unclaimed_videos.pop(sid, None)
                if unclaimed is not None:
                    self._attach_remote_video(participant, publication, unclaimed[1])
                continue
            was_muted = publication.muted
            publication._update_info(track_info)
            if publication.track is not None:
                publication.track._muted = publication.muted
            if publication.muted != was_muted:
                self.emit("track_muted" if publication.muted else "track_unmuted", participant, publication)

    def _remove_publication(self, participant: RemoteParticipant, track_sid: str) -> None:
        publication = participant._track_publications.get(track_sid)
        if publication is None:
            return
        self._detach_remote_video(participant, publication)
        self._unsubscribed_by_user.discard(track_sid)
        participant._track_publications.pop(track_sid, None)
        self.emit("track_unpublished", publication, participant)
        if self._engine is not None:
            self._spawn(self._engine.stop_remote_video(track_sid))

    def _remove_participant(self, info: models.ParticipantInfo) -> None:
        participant = self._remote_participants.get(info.identity)
        if participant is None or (info.sid and participant.sid != info.sid):
            return
        for sid in list(participant._track_publications):
            self._remove_publication(participant, sid)
        participant._update_info(info)
        del self._remote_participants[info.identity]
        participant._end_followers()
        self.emit("participant_disconnected", participant)

    def _attach_remote_video(
        self, participant: RemoteParticipant, publication: RemoteTrackPublication, pipeline: VideoReceivePipeline
    ) -> None:
        existing = publication.track
        if isinstance(existing, RemoteVideoTrack) and publication.sid in self._awaiting_resubscribe:
            # the same track came back after a reconnect: its streams keep going
            self._awaiting_resubscribe.discard(publication.sid)
            pipeline.on_frame = existing._fanout.push
            kept_fanout = existing._fanout
            pipeline.has_consumers = lambda: kept_fanout.has_sinks
            publication._subscribed = True
            return
        if existing is not None:
            self._detach_remote_video(participant, publication)
        track = RemoteVideoTrack(publication.sid, publication.name)
        track._muted = publication.muted
        pipeline.on_frame = track._fanout.push
        fanout = track._fanout
        pipeline.has_consumers = lambda: fanout.has_sinks
        publication._track = track
        publication._subscribed = True
        participant._track_available(track, publication.source)
        self.emit("track_subscribed", track, publication, participant)

    def _detach_remote_video(self, participant: RemoteParticipant, publication: RemoteTrackPublication) -> None:
        track = publication.track
        publication._subscribed = False
        self._awaiting_resubscribe.discard(publication.sid)
        if track is None:
            return
        publication._track = None
        participant._track_gone(track, publication.source)
        track._end()
        self.emit("track_unsubscribed", track, publication, participant)

    def _on_remote_video(self, track_sid: str, participant_sid: str, pipeline: VideoReceivePipeline) -> None:
        """Engine callback: media of a subscribed track started arriving."""
        if track_sid in self._unsubscribed_by_user and self._engine is not None:
            # the server's auto-subscription after a rejoin, before our unsubscribe lands
            self._spawn(self._engine.stop_remote_video(track_sid))
            return
        found = self._find_remote_publication(track_sid)
        if found is None:
            self._unclaimed_videos[track_sid] = (participant_sid, pipeline)
            return
        participant, publication = found
        self._attach_remote_video(participant, publication, pipeline)

    def _on_remote_video_ended(self, track_sid: str) -> None:
        """Engine callback: we no longer receive ``track_sid``."""
        self._unclaimed_videos.pop(track_sid, None)
        found = self._find_remote_publication(track_sid)
        if found is not None:
            self._detach_remote_video(*found)

    def _on_local_track_unpublished(self, track_sid: str) -> None:
        """Engine callback: the server unpublished one of our tracks."""
        if self._local_participant is None:
            return
        publication = self._local_participant._track_publications.get(track_sid)
        if publication is not None:
            self._finish_local_publication(publication)
            if self._engine is not None:
                self._spawn(self._engine.unpublish_video(track_sid))

    def _on_local_track_subscribed(self, track_sid: str) -> None:
        """Engine callback: someone subscribed to one of our tracks."""
        if self._local_participant is None:
            return
        publication = self._local_participant._track_publications.get(track_sid)
        if publication is None:
            # the notice can overtake the end of our own publish negotiation
            self._subscribed_before_published.add(track_sid)
            return
        if not publication._first_subscription.done():
            publication._first_subscription.set_result(None)
        self.emit("local_track_subscribed", publication.track)

    def _on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        """Engine callback: the server asks us to (un)mute a published track."""
        if self._local_participant is None:
            return
        publication = self._local_participant._track_publications.get(track_sid)
        if publication is not None and publication.track is not None:
            publication.track._set_muted(muted)
            publication._info.muted = muted
            self.emit("track_muted" if muted else "track_unmuted", self._local_participant, publication)

    def _on_room_update(self, room: models.Room) -> None:
        """Engine callback: room metadata or counters changed."""
        old_metadata = self.metadata
        self._info = room
        if old_metadata != self.metadata:
            self.emit("room_metadata_changed", old_metadata, self.metadata)
        self.emit("room_updated")

    def _on_disconnected(self, reason: int) -> None:
        """Engine callback: the session ended (we left, the server closed, or it failed)."""
        if self._connection_state == ConnectionState.CONN_DISCONNECTED:
            return
        for participant in list(self._remote_participants.values()):
            for publication in participant._track_publications.values():
                track = publication.track
                if track is not None:
                    publication._track = None
                    publication._subscribed = False
                    participant._track_gone(track, publication.source)
                    track._end()
            participant._end_followers()
        self._unclaimed_videos.clear()
        self._awaiting_resubscribe.clear()
        self._unsubscribed_by_user.clear()
        if self._local_participant is not None:
            self._local_participant._info.disconnect_reason = reason  # type: ignore[assignment]
            for sid, pipeline in list(self._publish_pipelines.items()):
                local_publication = self._local_participant._track_publications.get(sid)
                local_track = local_publication.track if local_publication is not None else None
                if local_track is not None:
                    local_track._fanout.remove(pipeline)
                    local_track._mute_listener = None
            self._publish_pipelines.clear()
            self._local_participant._end_followers()
        self._set_state(ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", reason)

    def __repr__(self) -> str:
        return f"rtc.Room(name={self.name}, connection_state={ConnectionState.Name(self._connection_state)})"


class _EngineEvents:
    """Forwards the engine's callbacks to a Room's private handlers."""

    def __init__(self, room: Room) -> None:
        self._room = room
        # False once the room has dropped this engine for a fresh one: its late
        # callbacks (teardown, stray messages) must not touch the room's state
        self.active = True
        self.lost = False

    def on_connection_lost(self, reason: int) -> None:
        self.lost = True
        if self.active:
            self._room._on_connection_lost(reason)

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        if self.active:
            self._room._on_participant_update(participants)

    def on_remote_video(self, track_sid: str, participant_sid: str, pipeline: VideoReceivePipeline) -> None:
        if self.active:
            self._room._on_remote_video(track_sid, participant_sid, pipeline)

    def on_remote_video_ended(self, track_sid: str) -> None:
        if self.active:
            self._room._on_remote_video_ended(track_sid)

    def on_local_track_unpublished(self, track_sid: str) -> None:
        if self.active:
            self._room._on_local_track_unpublished(track_sid)

    def on_local_track_subscribed(self, track_sid: str) -> None:
        if self.active:
            self._room._on_local_track_subscribed(track_sid)

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        if self.active:
            self._room._on_track_mute_requested(track_sid, muted)

    def on_room_update(self, room: models.Room) -> None:
        if self.active:
            self._room._on_room_update(room)

    def on_disconnected(self, reason: int) -> None:
        if self.active:
            self._room._on_disconnected(reason)


__all__ = ["EventTypes", "Participant", "Room"]
