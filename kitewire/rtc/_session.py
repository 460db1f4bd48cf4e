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
from kitewire.frames import TrackKind, VideoCodec

from ._data import RoomData
from ._participant_data import PublishDataError
from ._rpc import RpcEndpoint
from ._types import (
    AudioEncoding,
    ConnectError,
    ConnectionQuality,
    ConnectionState,
    PublishTrackError,
    RoomOptions,
    TrackPublishOptions,
    UnpublishTrackError,
)
from .audio_track import LocalAudioTrack, LocalTrack, RemoteAudioTrack, RemoteTrack
from .e2ee import DataCryptor, E2EEManager, E2EEOptions
from .participant import LocalParticipant, Participant, RemoteParticipant
from .stats import RtcStats, SessionRtcStats, build_rtc_stats
from .track import RemoteVideoTrack
from .track_publication import LocalTrackPublication, RemoteTrackPublication

DEFAULT_CONNECT_TIMEOUT = 5.0
_CODEC_NAMES = {
    int(VideoCodec.VP8): "VP8",
    int(VideoCodec.H264): "H264",
    int(VideoCodec.VP9): "VP9",
    int(VideoCodec.AV1): "AV1",
    int(VideoCodec.H265): "H265",
}


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
        self.data = RoomData(emit, lambda: self.engine, self.find_participant)
        self._active_speakers: dict[str, float] = {}  # participant sid -> level
        self.e2ee = E2EEManager(None, self._request, self._encrypted_tracks)
        self._subscription_permission: signal_pb.SubscriptionPermission | None = None

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
        self.data.set_max_payload(options.data_stream.max_payload_byte_length if options.data_stream else None)
        encryption = options.encryption or options.e2ee
        if encryption is not None and not isinstance(encryption, E2EEOptions):
            raise ValueError(f"encryption: expected E2EEOptions or None, got {type(encryption).__name__}")
        self.e2ee = E2EEManager(encryption, self._request, self._encrypted_tracks)
        connector = ReconnectingEngine(self, self._reconnect_timeout, engine_factory())
        try:
            join = await connector.connect(
                JoinParameters(
                    url,
                    token,
                    auto_subscribe=options.auto_subscribe,
                    timeout=options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
                    single_peer_connection=options.single_peer_connection,
                    e2ee=self.e2ee._config(),
                )
            )
        except EngineError as exc:
            raise ConnectError(str(exc)) from None
        self.connector = connector
        self.info = join.room
        self.data.joined(join)
        self.local_participant = LocalParticipant(join.participant, self)
        if encryption is not None:
            self.data.cryptor = DataCryptor(self.e2ee, lambda: join.participant.identity)
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

    # -- data, RPC and own state (LocalParticipant's DataLink) --------------------

    @property
    def rpc(self) -> RpcEndpoint:
        """DataLink: the local participant's RPC endpoint."""
        return self.data.rpc

    async def publish_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """DataLink: send one DataPacket; ValueError when oversized, PublishDataError when it cannot go."""
        try:
            await self.data.send(packet, reliable=reliable)
        except EngineError as exc:
            raise PublishDataError(str(exc)) from None

    async def update_metadata(
        self, *, metadata: str | None = None, name: str | None = None, attributes: dict[str, str] | None = None
    ) -> None:
        """DataLink: change our metadata, name or attributes and wait for the server's RequestResponse."""
        engine = self.engine
        if engine is None or not self.connected():
            raise RuntimeError("cannot update the participant: the room is not connected")
        try:
            answer = await engine.update_metadata(metadata=metadata, name=name, attributes=attributes)
        except EngineError as exc:
            raise RuntimeError(f"updating the participant failed: {exc}") from None
        if answer.reason != signal_pb.RequestResponse.OK:
            reason = signal_pb.RequestResponse.Reason.Name(answer.reason)
            raise RuntimeError(f"the server refused the update ({reason}): {answer.message}")

    def find_participant(self, identity: str) -> Participant | None:
        """The local or remote participant with ``identity``."""
        local = self.local_participant
        if local is not None and local.identity == identity:
            return local
        return self.remote_participants.get(identity)

    def _participant_by_sid(self, sid: str) -> Participant | None:
        local = self.local_participant
        if local is not None and local.sid == sid:
            return local
        for participant in self.remote_participants.values():
            if participant.sid == sid:
                return participant
        return None

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """EngineListener: a DataPacket (user data, DTMF, transcription, RPC, stream)."""
        self.data.on_packet(packet, reliable)

    def on_speakers_changed(self, speakers: list[models.SpeakerInfo]) -> None:
        """EngineListener: speaking participants changed; emits ``active_speakers_changed`` (loudest first)."""
        for speaker in speakers:
            if speaker.active:
                self._active_speakers[speaker.sid] = speaker.level
            else:
                self._active_speakers.pop(speaker.sid, None)
        ranked = sorted(self._active_speakers.items(), key=lambda item: -item[1])
        active = [p for p in (self._participant_by_sid(sid) for sid, _ in ranked) if p is not None]
        self._emit("active_speakers_changed", active)

    def on_connection_quality(self, updates: list[signal_pb.ConnectionQualityInfo]) -> None:
        """EngineListener: emits ``connection_quality_changed(participant, quality)`` per change."""
        for update in updates:
            participant = self._participant_by_sid(update.participant_sid)
            if participant is None:
                continue
            quality = ConnectionQuality(int(update.quality))
            if quality != participant.connection_quality:
                participant._set_connection_quality(quality)
                self._emit("connection_quality_changed", participant, quality)

    def set_subscription_permissions(self, permission: signal_pb.SubscriptionPermission) -> None:
        """ParticipantLink: who may subscribe to our tracks."""
        if not self.connected():
            raise RuntimeError("cannot set subscription permissions: the room is not connected")
        self._subscription_permission = permission
        self._request(lambda engine: engine.set_subscription_permissions(permission))

    def on_e2ee_state(self, participant_identity: str, state: int) -> None:
        """EngineListener: a track's frame cryptor changed state; emits ``e2ee_state_changed(participant, state)``."""
        participant = self.find_participant(participant_identity)
        if participant is not None:
            self._emit("e2ee_state_changed", participant, state)

    def _encrypted_tracks(self) -> list[tuple[str, str]]:
        """(identity, track sid) of our tracks and the subscribed encrypted ones: E2EEManager.frame_cryptors()."""
        tracks = []
        local = self.local_participant
        if local is not None:
            tracks += [(local.identity, sid) for sid in local.track_publications]
        for participant in self.remote_participants.values():
            for sid, publication in participant.track_publications.items():
                if publication.track is not None and publication.encryption_type != 0:
                    tracks.append((participant.identity, sid))
        return tracks

    def _emit_info_changes(self, participant: Participant, old: models.ParticipantInfo) -> None:
        """The events livekit emits when a participant's info changes (metadata, name, attributes, permissions)."""
        new = participant._info
        if old.metadata != new.metadata:
            self._emit("participant_metadata_changed", participant, str(old.metadata), str(new.metadata))
        if old.name != new.name:
            self._emit("participant_name_changed", participant, str(old.name), str(new.name))
        old_attributes, new_attributes = dict(old.attributes), dict(new.attributes)
        changed = {key: value for key, value in new_attributes.items() if old_attributes.get(key) != value}
        changed.update({key: "" for key in old_attributes if key not in new_attributes})
        if changed:
            self._emit("participant_attributes_changed", changed, participant)
        if old.HasField("permission") and old.permission != new.permission:
            self._emit("participant_permissions_changed", participant, new.permission)

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
        self.e2ee._rejoined()
        if self._subscription_permission is not None:
            self.set_subscription_permissions(self._subscription_permission)
        await self._republish_local(engine)

    def on_reconnected(self) -> None:
        """SessionListener: the rejoined session is restored."""
        self._set_state(ConnectionState.CONN_CONNECTED)
        self._emit("reconnected")

    def _reconcile_remote(self, engine: EngineHandle, join: signal_pb.JoinResponse) -> None:
        """Bring participants and publications in line with a new JoinResponse."""
        self.info = join.room
        self.data.joined(join)
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
                await _engine_unpublish(engine, published.info.sid)
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

    async def rtc_stats(self) -> SessionRtcStats:
        """Everything sent and received now, in livekit's shape (``Room.get_rtc_stats``)."""
        engine = self.engine
        if engine is None or not self.connected():
            raise RuntimeError("the room isn't connected")
        sent, received = build_rtc_stats(await engine.get_stats())
        return SessionRtcStats(publisher_stats=sent, subscriber_stats=received)

    async def track_stats(self, track_sid: str) -> list[RtcStats]:
        """The streams of one published or subscribed track (``Track.get_stats``)."""
        engine = self.engine
        if engine is None:
            return []
        sent, received = build_rtc_stats(await engine.get_stats(), track_sid=track_sid)
        return sent + received

    def bytes_sent(self, track_sid: str) -> int:
        """SendingStats: payload bytes the publish pipeline of ``track_sid`` sent."""
        pipeline = self._publish_pipelines.get(track_sid)
        return pipeline.bytes_sent if pipeline is not None else 0

    def _feed_local(
        self,
        publication: LocalTrackPublication,
        track: LocalTrack,
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
        track._stats_link = self.track_stats

    def _unfeed_local(self, track_sid: str, pipeline: PublishSink) -> None:
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        track = publication.track if publication is not None else None
        if track is not None:
            track._unpublished(pipeline)

    async def publish_track(self, track: LocalTrack, options: TrackPublishOptions) -> LocalTrackPublication:
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
                await _engine_unpublish(engine, track_sid)
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
                    old_info = local._info
                    local._update_info(info)
                    self._emit_info_changes(local, old_info)
                    for track_info in info.tracks:
                        local_publication = local._publication(track_info.sid)
                        if local_publication is not None:
                            local_publication._update_info(track_info)
                continue
            if info.state == models.ParticipantInfo.DISCONNECTED:
                self._remove_participant(info)
            else:
                self._update_participant(info)
        for info in participants:
            participant = self.find_participant(info.identity)
            if participant is not None and (encrypted := self.e2ee._encryption_changed(info)) is not None:
                self._emit("participant_encryption_status_changed", participant, encrypted)

    def _update_participant(self, info: models.ParticipantInfo) -> None:
        participant = self.remote_participants.get(info.identity)
        if participant is None:
            participant = RemoteParticipant(info)
            self.remote_participants[participant.identity] = participant
            self._emit("participant_connected", participant)
        else:
            old_info = participant._info
            participant._update_info(info)
            self._emit_info_changes(participant, old_info)
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
        self._active_speakers.pop(participant.sid, None)
        self.data.participant_left(participant.identity)
        participant._end_followers()
        self._emit("participant_disconnected", participant)

    def _attach_remote_video(self, participant: RemoteParticipant, publication: RemoteTrackPublication) -> None:
        engine = self.engine
        existing = publication.track
        if existing is not None and publication.sid in self._awaiting_resubscribe:
            # the same track came back after a reconnect: its streams keep going
            self._awaiting_resubscribe.discard(publication.sid)
            if engine is not None:
                _route_remote(engine, publication.sid, existing)
            publication._attach(None)
            return
        if existing is not None:
            self._detach_remote_video(participant, publication)
        track: RemoteTrack
        if publication.kind == TrackKind.KIND_AUDIO:
            track = RemoteAudioTrack(publication.sid, publication.name)
        else:
            track = RemoteVideoTrack(publication.sid, publication.name)
        track._stats_link = self.track_stats
        track._set_muted(publication.muted)
        if engine is not None:
            _route_remote(engine, publication.sid, track)
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

    # audio tracks arrive and end exactly as video ones do (the publication's kind picks the track type)
    def on_remote_audio(self, track_sid: str, participant_sid: str) -> None:
        """EngineListener: media of a subscribed audio track started arriving."""
        self.on_remote_video(track_sid, participant_sid)

    def on_remote_audio_ended(self, track_sid: str) -> None:
        """EngineListener: we no longer receive the audio track ``track_sid``."""
        self.on_remote_video_ended(track_sid)

    def on_local_track_unpublished(self, track_sid: str) -> None:
        """EngineListener: the server unpublished one of our tracks."""
        local = self.local_participant
        publication = local._publication(track_sid) if local is not None else None
        if publication is not None:
            self._finish_local_publication(publication)
            self._request(lambda engine: _engine_unpublish(engine, track_sid))

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
        self._active_speakers.clear()
        self.data.close()
        if self.local_participant is not None:
            self.local_participant._set_disconnect_reason(reason)
            for sid, pipeline in list(self._publish_pipelines.items()):
                self._unfeed_local(sid, pipeline)
            self._publish_pipelines.clear()
            self.local_participant._end_followers()
        self._set_state(ConnectionState.CONN_DISCONNECTED)
        self._emit("disconnected", reason)


def _route_remote(engine: EngineHandle, track_sid: str, track: RemoteTrack) -> None:
    if isinstance(track, RemoteAudioTrack):
        engine.route_remote_audio(track_sid, track)
    else:
        engine.route_remote_video(track_sid, track._fanout)


async def _engine_unpublish(engine: EngineHandle, track_sid: str) -> None:
    # each is a no-op for a sid it did not publish
    await engine.unpublish_video(track_sid)
    await engine.unpublish_audio(track_sid)


async def _engine_publish(engine: EngineHandle, track: LocalTrack, options: TrackPublishOptions) -> PublishHandle:
    if isinstance(track, LocalAudioTrack):
        channels = track.source.num_channels
        return await engine.publish_audio(
            cid=track._cid,
            name=track.name,
            source=int(options.source),
            num_channels=channels,
            dtx=bool(options.dtx),
            bitrate=(options.audio_encoding or AudioEncoding()).opus_bitrate(channels),
        )
    source = track.source
    encoding = options.video_encoding
    return await engine.publish_video(
        cid=track._cid,
        name=track.name,
        source=int(options.source),
        width=source.width,
        height=source.height,
        codec=_CODEC_NAMES[int(options.video_codec)],
        # as livekit: simulcast unless asked not to, or asked for one SVC stream (kitewire's
        # encoders code that stream as one layer, see media.codecs)
        simulcast=options.simulcast is not False and not options.scalability_mode,
        max_bitrate=int(encoding.max_bitrate) if encoding else 0,
        max_framerate=float(encoding.max_framerate) if encoding else 0.0,
        frame_metadata_features=tuple(options.frame_metadata_features),
    )
