"""The Room's state and its handling of engine events, behind the public :class:`~kitewire.rtc.Room`.

:class:`RoomSession` keeps the participants, publications and tracks in line with
what the engine reports, emits the Room's events (through the emitter it is given),
and is the interface that participants and publications call (publish, unpublish,
subscribe, video quality). Reconnection itself is the engine's
(:class:`kitewire.engine.ReconnectingEngine`); the session reacts to it: keeps
its objects while a session is dropped, reconciles them with a rejoin's
JoinResponse and republishes local tracks.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.engine import EngineError, JoinParameters, ReconnectingEngine
from kitewire.engine.handle import EngineHandle, PublishHandle, PublishSink
from kitewire.engine.process import engine_factory
from kitewire.frames import VideoCodec

from ._types import (
    ConnectError,
    ConnectionState,
    PublishTrackError,
    RoomOptions,
    TrackPublishOptions,
    UnpublishTrackError,
)
from .participant import LocalParticipant, RemoteParticipant
from .track import LocalVideoTrack, RemoteVideoTrack
from .track_publication import LocalTrackPublication, RemoteTrackPublication

DEFAULT_CONNECT_TIMEOUT = 5.0
_CODEC_NAMES = {int(VideoCodec.VP8): "VP8", int(VideoCodec.H264): "H264"}

Emit = Callable[..., None]


class RoomSession:
    """One Room's connection state, participants and engine wiring (see the module docstring)."""

    def __init__(self, emit: Emit, reconnect_timeout: Callable[[], float]) -> None:
        self._emit = emit
        self._reconnect_timeout = reconnect_timeout
        self.connector: ReconnectingEngine | None = None
        self.info = models.Room()
        self.local_participant: LocalParticipant | None = None
        self.remote_participants: dict[str, RemoteParticipant] = {}
        self.connection_state: int = ConnectionState.CONN_DISCONNECTED
        self._options = RoomOptions()
        # subscribed media that arrived before the participant update announcing it
        self._unclaimed_videos: set[str] = set()
        self._publish_pipelines: dict[str, PublishSink] = {}
        self._publish_options: dict[str, TrackPublishOptions] = {}
        self._subscribed_before_published: set[str] = set()
        # remote tracks kept across a reconnect, waiting for their media to return
        self._awaiting_resubscribe: set[str] = set()
        self._unsubscribed_by_user: set[str] = set()

    @property
    def engine(self) -> EngineHandle | None:
        """The current engine session, if connected once."""
        return self.connector.engine if self.connector is not None else None

    @property
    def reconnecting(self) -> bool:
        """True while the engine rejoins."""
        return self.connector is not None and self.connector.reconnecting

    def connected(self) -> bool:
        """True from a successful join until disconnected (including while reconnecting)."""
        return self.engine is not None and self.connection_state != ConnectionState.CONN_DISCONNECTED

    # -- connect / disconnect ----------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions) -> None:
        """Join (the Room validated the arguments); raises ConnectError."""
        self._options = options
        connector = ReconnectingEngine(self, self._reconnect_timeout, engine_factory())
        try:
            join = await connector.connect(
                JoinParameters(
                    url,
                    token,
                    auto_subscribe=options.auto_subscribe,
                    timeout=options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
                    single_peer_connection=options.single_peer_connection,
                )
            )
        except EngineError as exc:
            raise ConnectError(str(exc)) from None
        self.connector = connector
        self.info = join.room
        self.local_participant = LocalParticipant(join.participant, self)
        self.remote_participants = {}
        for info in join.other_participants:
            participant = RemoteParticipant(info)
            self.remote_participants[participant.identity] = participant
            for track_info in info.tracks:
                participant._add_publication(RemoteTrackPublication(track_info, self, participant.sid))
        self._set_state(ConnectionState.CONN_CONNECTED)
        self._emit("connected")

    async def disconnect(self, reason: int) -> None:
        """Leave; streams on the room's tracks end."""
        connector = self.connector
        if connector is None or self.connection_state == ConnectionState.CONN_DISCONNECTED:
            return
        await connector.disconnect(reason)  # reports on_disconnected

    def _set_state(self, state: int) -> None:
        if state != self.connection_state:
            self.connection_state = state
            self._emit("connection_state_changed", state)

    def _request(self, request: Callable[[EngineHandle], Coroutine[Any, Any, Any]]) -> None:
        """Send a request on the current engine session, as a task it owns."""
        engine = self.engine
        if engine is not None:
            engine.spawn(request(engine))

    # -- reconnection (the engine's ReconnectingEngine reports) ------------------

    def on_reconnecting(self) -> None:
        """SessionListener: the connection was lost and the engine rejoins."""
        self._set_state(ConnectionState.CONN_RECONNECTING)
        self._emit("reconnecting")

    def on_session_dropped(self) -> None:
        """SessionListener: the old session is closed; keep the room's objects for the rejoin."""
        for sid, pipeline in list(self._publish_pipelines.items()):
            self._unfeed_local(sid, pipeline)
        self._publish_pipelines.clear()
        self._unclaimed_videos.clear()
        self._subscribed_before_published.clear()
        for participant in self.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._awaiting_resubscribe.add(publication.sid)

    async def on_rejoined(self, engine: EngineHandle, join: signal_pb.JoinResponse) -> None:
        """SessionListener: reconcile with the new JoinResponse, then republish."""
        # synchronously, before the new session's first message is read
        self._reconcile_remote(engine, join)
        await self._republish_local(engine)

    def on_reconnected(self) -> None:
        """SessionListener: the rejoined session is restored."""
        self._set_state(ConnectionState.CONN_CONNECTED)
        self._emit("reconnected")

    def _reconcile_remote(self, engine: EngineHandle, join: signal_pb.JoinResponse) -> None:
        """Bring participants and publications in line with a new JoinResponse."""
        self.info = join.room
        if self.local_participant is not None:
            self.local_participant._update_info(join.participant)
        present = {info.identity for info in join.other_participants}
        for identity, participant in list(self.remote_participants.items()):
            if identity not in present:
                self._remove_participant(participant._departed_info())
        for info in join.other_participants:
            self._update_participant(info)
        # subscriptions the server will not restore by itself
        for participant in self.remote_participants.values():
            for sid in participant.track_publications:
                if sid in self._awaiting_resubscribe and not self._options.auto_subscribe:
                    engine.spawn(engine.update_subscription(sid, True))
                elif sid in self._unsubscribed_by_user and self._options.auto_subscribe:
                    engine.spawn(engine.update_subscription(sid, False))

    async def _republish_local(self, engine: EngineHandle) -> None:
        local = self.local_participant
        if local is None:
            return
        for publication in list(local.track_publications.values()):
            track = publication.track
            if track is None or publication.sid in self._publish_pipelines:
                continue
            options = self._publish_options.get(publication.sid) or TrackPublishOptions(source=publication.source)
            published = await _engine_publish(engine, track, options)
            if local._publication(publication.sid) is not publication:
                # unpublished by the user while we negotiated
                await engine.unpublish_video(published.info.sid)
                continue
            previous_sid = publication.sid
            local._pop_publication(previous_sid)
            self._publish_options.pop(previous_sid, None)
            publication._update_info(published.info)
            local._add_publication(publication)
            self._feed_local(publication, track, published.pipeline, options)
            if track.muted:
                engine.spawn(engine.mute_track(publication.sid, True))
            self._emit("local_track_republished", publication, previous_sid)
            self._claim_early_subscription(publication.sid)

    # -- publishing (LocalParticipant's PublishingLink) --------------------------

    def bytes_sent(self, track_sid: str) -> int:
        """SendingStats: payload bytes the publish pipeline of ``track_sid`` sent."""
        pipeline = self._publish_pipelines.get(track_sid)
        return pipeline.bytes_sent if pipeline is not None else 0

    def _feed_local(
        self,
        publication: LocalTrackPublication,
        track: LocalVideoTrack,
        pipeline: PublishSink,
        options: TrackPublishOptions,
    ) -> None:
        """Feed the track's frames into ``pipeline`` and forward mute changes."""
        pipeline.muted = track.muted
        self._publish_pipelines[publication.sid] = pipeline
        self._publish_options[publication.sid] = options

        def on_mute_changed(muted: bool) -> None:
            pipeline.muted = muted
            if self.connected():
                self._request(lambda engine: engine.mute_track(publication.sid, muted))

        track._published_as(publication.sid, pipeline, on_mute_changed)

    def _unfeed_local(self, track_sid: str, pipeline: PublishSink) -> None:
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        track = publication.track if publication is not None else None
        if track is not None:
            track._unpublished(pipeline)

    async def publish_track(self, track: LocalVideoTrack, options: TrackPublishOptions) -> LocalTrackPublication:
        """PublishingLink: negotiate ``track`` and emit ``local_track_published``."""
        engine = self.engine
        local = self.local_participant
        if engine is None or local is None or not self.connected():
            raise PublishTrackError("cannot publish a track: the room is not connected")
        try:
            published = await _engine_publish(engine, track, options)
        except EngineError as exc:
            raise PublishTrackError(str(exc)) from None
        publication = LocalTrackPublication(published.info, track, self)
        self._feed_local(publication, track, published.pipeline, options)
        local._add_publication(publication)
        self._emit("local_track_published", publication, track)
        local._track_available(track, publication.source)
        self._claim_early_subscription(publication.sid)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        """PublishingLink: stop publishing ``track_sid``."""
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        if publication is None:
            return
        self._finish_local_publication(publication)
        engine = self.engine
        if engine is not None:
            try:
                await engine.unpublish_video(track_sid)
            except EngineError as exc:
                raise UnpublishTrackError(str(exc)) from None

    def _finish_local_publication(self, publication: LocalTrackPublication) -> None:
        local = self.local_participant
        if local is None or local._pop_publication(publication.sid) is None:
            return
        pipeline = self._publish_pipelines.pop(publication.sid, None)
        self._publish_options.pop(publication.sid, None)
        track = publication.track
        if track is not None:
            track._unpublished(pipeline)
            local._track_gone(track, publication.source)
        self._emit("local_track_unpublished", publication)
        publication._release()

    def _claim_early_subscription(self, track_sid: str) -> None:
        if track_sid in self._subscribed_before_published:
            self._subscribed_before_published.discard(track_sid)
            self.on_local_track_subscribed(track_sid)

    # -- subscriptions (RemoteTrackPublication's SubscribingLink) -----------------

    def request_subscription(self, publication: RemoteTrackPublication, subscribed: bool) -> None:
        """SubscribingLink: (un)subscribe ``publication``."""
        engine = self.engine
        if engine is None or not self.connected():
            raise RuntimeError("cannot change a subscription: the room is not connected")
        engine.spawn(engine.update_subscription(publication.sid, subscribed))
        # remembered so that a rejoin does not let auto_subscribe undo it
        if subscribed:
            self._unsubscribed_by_user.discard(publication.sid)
        else:
            self._unsubscribed_by_user.add(publication.sid)
            engine.spawn(engine.stop_remote_video(publication.sid))

    def request_video_quality(self, publication: RemoteTrackPublication, quality: int) -> None:
        """SubscribingLink: ask for a simulcast layer of ``publication``."""
        engine = self.engine
        if engine is None or not self.connected():
            raise RuntimeError("cannot change video quality: the room is not connected")
        engine.spawn(engine.update_track_settings(publication.sid, quality))

    # -- engine events -----------------------------------------------------------

    def _find_remote_publication(self, track_sid: str) -> tuple[RemoteParticipant, RemoteTrackPublication] | None:
        for participant in self.remote_participants.values():
            publication = participant._publication(track_sid)
            if publication is not None:
                return participant, publication
        return None

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        """EngineListener: the server's ParticipantUpdate."""
        local = self.local_participant
        for info in participants:
            if local is not None and (info.sid == local.sid or info.identity == local.identity):
                if info.state != models.ParticipantInfo.DISCONNECTED:
                    local._update_info(info)
                    for track_info in info.tracks:
                        local_publication = local._publication(track_info.sid)
                        if local_publication is not None:
                            local_publication._update_info(track_info)
                continue
            if info.state == models.ParticipantInfo.DISCONNECTED:
                self._remove_participant(info)
            else:
                self._update_participant(info)

    def _update_participant(self, info: models.ParticipantInfo) -> None:
        participant = self.remote_participants.get(info.identity)
        if participant is None:
            participant = RemoteParticipant(info)
            self.remote_participants[participant.identity] = participant
            self._emit("participant_connected", participant)
        else:
            old_metadata, old_name = participant.metadata, participant.name
            participant._update_info(info)
            if old_metadata != participant.metadata:
                self._emit("participant_metadata_changed", participant, old_metadata, participant.metadata)
            if old_name != participant.name:
                self._emit("participant_name_changed", participant, old_name, participant.name)
        announced = {track.sid: track for track in info.tracks}
        for sid in [sid for sid in participant.track_publications if sid not in announced]:
            self._remove_publication(participant, sid)
        for sid, track_info in announced.items():
            publication = participant._publication(sid)
            if publication is None:
                publication = RemoteTrackPublication(track_info, self, participant.sid)
                participant._add_publication(publication)
                self._emit("track_published", publication, participant)
                if sid in self._unclaimed_videos:
                    self._unclaimed_videos.discard(sid)
                    self._attach_remote_video(participant, publication)
                continue
            was_muted = publication.muted
            publication._update_info(track_info)
            if publication.track is not None:
                publication.track._set_muted(publication.muted)
            if publication.muted != was_muted:
                self._emit("track_muted" if publication.muted else "track_unmuted", participant, publication)

    def _remove_publication(self, participant: RemoteParticipant, track_sid: str) -> None:
        publication = participant._publication(track_sid)
        if publication is None:
            return
        self._detach_remote_video(participant, publication)
        self._unsubscribed_by_user.discard(track_sid)
        participant._pop_publication(track_sid)
        self._emit("track_unpublished", publication, participant)
        self._request(lambda engine: engine.stop_remote_video(track_sid))

    def _remove_participant(self, info: models.ParticipantInfo) -> None:
        participant = self.remote_participants.get(info.identity)
        if participant is None or (info.sid and participant.sid != info.sid):
            return
        for sid in list(participant.track_publications):
            self._remove_publication(participant, sid)
        participant._update_info(info)
        del self.remote_participants[info.identity]
        participant._end_followers()
        self._emit("participant_disconnected", participant)

    def _attach_remote_video(self, participant: RemoteParticipant, publication: RemoteTrackPublication) -> None:
        engine = self.engine
        existing = publication.track
        if isinstance(existing, RemoteVideoTrack) and publication.sid in self._awaiting_resubscribe:
            # the same track came back after a reconnect: its streams keep going
            self._awaiting_resubscribe.discard(publication.sid)
            if engine is not None:
                engine.route_remote_video(publication.sid, existing._fanout)
            publication._attach(None)
            return
        if existing is not None:
            self._detach_remote_video(participant, publication)
        track = RemoteVideoTrack(publication.sid, publication.name)
        track._set_muted(publication.muted)
        if engine is not None:
            engine.route_remote_video(publication.sid, track._fanout)
        publication._attach(track)
        participant._track_available(track, publication.source)
        self._emit("track_subscribed", track, publication, participant)

    def _detach_remote_video(self, participant: RemoteParticipant, publication: RemoteTrackPublication) -> None:
        self._awaiting_resubscribe.discard(publication.sid)
        track = publication._detach()
        if track is None:
            return
        participant._track_gone(track, publication.source)
        track._end()
        self._emit("track_unsubscribed", track, publication, participant)

    def on_remote_video(self, track_sid: str, participant_sid: str) -> None:
        """EngineListener: media of a subscribed track started arriving."""
        if track_sid in self._unsubscribed_by_user:
            # the server's auto-subscription after a rejoin, before our unsubscribe lands
            self._request(lambda engine: engine.stop_remote_video(track_sid))
            return
        found = self._find_remote_publication(track_sid)
        if found is None:
            self._unclaimed_videos.add(track_sid)
            return
        self._attach_remote_video(*found)

    def on_remote_video_ended(self, track_sid: str) -> None:
        """EngineListener: we no longer receive ``track_sid``."""
        self._unclaimed_videos.discard(track_sid)
        found = self._find_remote_publication(track_sid)
        if found is not None:
            self._detach_remote_video(*found)

    def on_local_track_unpublished(self, track_sid: str) -> None:
        """EngineListener: the server unpublished one of our tracks."""
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        if publication is not None:
            self._finish_local_publication(publication)
            self._request(lambda engine: engine.unpublish_video(track_sid))

    def on_local_track_subscribed(self, track_sid: str) -> None:
        """EngineListener: someone subscribed to one of our tracks."""
        local = self.local_participant
        if local is None:
            return
        publication = local._publication(track_sid)
        if publication is None:
            # the notice can overtake the end of our own publish negotiation
            self._subscribed_before_published.add(track_sid)
            return
        publication._note_subscribed()
        self._emit("local_track_subscribed", publication.track)

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        """EngineListener: the server asks us to (un)mute a published track."""
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        if publication is not None and publication.track is not None:
            publication.track._set_muted(muted)
            publication._set_muted(muted)
            self._emit("track_muted" if muted else "track_unmuted", local, publication)

    def on_room_update(self, room: models.Room) -> None:
        """EngineListener: room metadata or counters changed."""
        old_metadata = str(self.info.metadata)
        self.info = room
        if old_metadata != room.metadata:
            self._emit("room_metadata_changed", old_metadata, str(room.metadata))
        self._emit("room_updated")

    def on_disconnected(self, reason: int) -> None:
        """EngineListener: the connection ended (we left, the server closed, or rejoining gave up)."""
        if self.connection_state == ConnectionState.CONN_DISCONNECTED:
            return
        for participant in list(self.remote_participants.values()):
            for publication in participant.track_publications.values():
                track = publication._detach()
                if track is not None:
                    participant._track_gone(track, publication.source)
                    track._end()
            participant._end_followers()
        self._unclaimed_videos.clear()
        self._awaiting_resubscribe.clear()
        self._unsubscribed_by_user.clear()
        if self.local_participant is not None:
            self.local_participant._set_disconnect_reason(reason)
            for sid, pipeline in list(self._publish_pipelines.items()):
                self._unfeed_local(sid, pipeline)
            self._publish_pipelines.clear()
            self.local_participant._end_followers()
        self._set_state(ConnectionState.CONN_DISCONNECTED)
        self._emit("disconnected", reason)


async def _engine_publish(engine: EngineHandle, track: LocalVideoTrack, options: TrackPublishOptions) -> PublishHandle:
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
