"""One client participant's session with a LiveKit server.

The protocol itself (joining over ``/rtc/v1`` with one PeerConnection or over
``/rtc`` with two, trickle, answers and offers, AddTrackRequests) is
:class:`kitewire.engine.wire.WireClient`'s; this module puts the SDK's encode and
decode pipelines on the tracks it negotiates and reports to the Room.

Reconnection is a full restart, as the official SDKs do when a resume is not
possible (and kitewire's server never resumes): a session that loses its signal
socket or one of its PeerConnections reports ``on_connection_lost`` and stays
as it is; :class:`kitewire.engine.reconnect.ReconnectingEngine` then calls
:meth:`RtcEngine.abandon` on it and joins again with a fresh RtcEngine (new
signal connection, new PeerConnections).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.media import VideoLayerPlan, normalize_codec, plan_video_layers
from kitewire.media.e2ee_frame import FrameTransform, KeySet
from kitewire.signal import SignalConnectError
from kitewire.transport import PeerConnectionConfig, Transceiver

from .audio_publisher import AudioPublishPipeline
from .audio_receiver import AudioReceivePipeline
from .e2ee import E2eeSession
from .handle import AudioConsumer, EngineEvents, EngineListener, FrameConsumer, JoinParameters
from .lipsync import StreamSync
from .publisher import VideoPublishPipeline
from .receiver import VideoReceivePipeline
from .stats import EngineStats, pc_stats, pipeline_counters
from .wire import EngineError, IncomingTrack, JoinMode, WireClient, add_audio_track_request, add_track_request

__all__ = [
    "AudioConsumer",
    "EngineError",
    "EngineEvents",
    "EngineListener",
    "FrameConsumer",
    "JoinParameters",
    "PublishedAudio",
    "PublishedVideo",
    "RtcEngine",
]

logger = logging.getLogger("kitewire.engine")

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# video codecs sent end-to-end encrypted (those whose clear header LiveKit defines and our packetizers keep)
_E2EE_CODECS = ("VP8", "H264", "H265")


@dataclass
class _RemoteVideo:
    track_sid: str
    participant_sid: str
    pipeline: VideoReceivePipeline


@dataclass
class PublishedVideo:
    """What :meth:`RtcEngine.publish_video` returns."""

    info: models.TrackInfo
    pipeline: VideoPublishPipeline
    transceiver: Transceiver


@dataclass
class _RemoteAudio:
    track_sid: str
    participant_sid: str
    pipeline: AudioReceivePipeline


@dataclass
class PublishedAudio:
    """What :meth:`RtcEngine.publish_audio` returns."""

    info: models.TrackInfo
    pipeline: AudioPublishPipeline
    transceiver: Transceiver


class RtcEngine:
    """The SDK's session: a :class:`WireClient` plus the per-track encode and decode pipelines."""

    def __init__(self, listener: EngineListener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._wire: WireClient | None = None
        self._remote_videos: dict[str, _RemoteVideo] = {}  # by mid
        self._published: dict[str, PublishedVideo] = {}  # by track sid
        self._remote_audios: dict[str, _RemoteAudio] = {}  # by mid
        # by (participant sid, msid stream id); held by the pipelines, gone with the last of them
        self._stream_syncs: weakref.WeakValueDictionary[tuple[str, str], StreamSync] = weakref.WeakValueDictionary()
        self._published_audio: dict[str, PublishedAudio] = {}  # by track sid
        self._closed = False
        self._loss_reported = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._e2ee: E2eeSession | None = None
        self.join: signal_pb.JoinResponse | None = None

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and the end of the session."""
        return self._wire is not None and self._wire.connected and not self._closed

    @property
    def single_pc(self) -> bool:
        """True when the server took the ``/rtc/v1`` join: one PeerConnection for both directions."""
        return self._wire is not None and self._wire.single_pc

    # -- connecting --------------------------------------------------------------

    async def connect(self, parameters: JoinParameters) -> signal_pb.JoinResponse:
        """Join the room; returns the server's JoinResponse. Raises EngineError.

        As livekit 1.2 does, the join goes over ``/rtc/v1`` with one
        PeerConnection, and over legacy ``/rtc`` with two when the server answers
        the v1 path with 404 (older LiveKit servers); ``single_peer_connection=False``
        (livekit's RoomOptions name) goes straight to ``/rtc``.
        """
        url = parameters.url
        join_mode: JoinMode = "legacy" if parameters.single_peer_connection is False else "auto"
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise EngineError(f"expected a ws:// or wss:// server URL, got {url!r} ({exc})") from None
        wire = WireClient(self, PeerConnectionConfig(loopback_only=host in _LOOPBACK_HOSTS))
        self._wire = wire
        if parameters.e2ee is not None:
            self._e2ee = E2eeSession(parameters.e2ee, self._listener.on_e2ee_state, self._loop)
        try:
            join = await wire.connect(
                url,
                parameters.token,
                auto_subscribe=parameters.auto_subscribe,
                join_mode=join_mode,
                timeout=parameters.timeout,
            )
        except SignalConnectError as exc:
            await wire.close(leave=False)
            raise EngineError(str(exc)) from None
        except (OSError, ValueError) as exc:
            await wire.close(leave=False)
            raise EngineError(f"could not join {url}: {exc}") from None
        except BaseException:
            await wire.close(leave=True)
            raise
        self.join = join
        if self._e2ee is not None:
            self._e2ee.learn([join.participant, *join.other_participants])
        return join

    # -- what the wire client reports ---------------------------------------------

    def on_signal_message(self, message: signal_pb.SignalResponse) -> None:
        """WireListener: the messages the Room cares about."""
        kind = message.WhichOneof("message")
        if kind == "update":
            if self._e2ee is not None:
                self._e2ee.learn(message.update.participants)
            self._listener.on_participant_update(list(message.update.participants))
        elif kind == "track_unpublished":
            self._listener.on_local_track_unpublished(message.track_unpublished.track_sid)
        elif kind == "track_subscribed":
            self._listener.on_local_track_subscribed(message.track_subscribed.track_sid)
        elif kind == "mute":
            self._listener.on_track_mute_requested(message.mute.sid, message.mute.muted)
        elif kind == "room_update":
            self._listener.on_room_update(message.room_update.room)
        elif kind == "speakers_changed":
            self._listener.on_speakers_changed(list(message.speakers_changed.speakers))
        elif kind == "connection_quality":
            self._listener.on_connection_quality(list(message.connection_quality.updates))

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """WireListener: a DataPacket; the server's active-speaker packets become speaker changes."""
        if packet.WhichOneof("value") == "speaker":
            self._listener.on_speakers_changed(list(packet.speaker.speakers))
        else:
            self._listener.on_data_packet(packet, reliable)

    def on_signal_closed(self, reason: int, reconnectable: bool, detail: str) -> None:
        """WireListener: a dropped socket may be rejoined; a final leave ends the session."""
        if self._closed:
            return
        if reconnectable:
            self._report_loss(reason)
        elif self._wire is not None:
            self._wire.spawn(self._shutdown(reason, send_leave=False))

    def on_media_failed(self) -> None:
        """WireListener: a PeerConnection failed."""
        self._report_loss(int(models.DisconnectReason.MEDIA_FAILURE))

    def _report_loss(self, reason: int) -> None:
        if self._closed or self._loss_reported or self._wire is None:
            return
        self._loss_reported = True
        self._listener.on_connection_lost(reason)

    async def on_incoming_tracks(self, tracks: list[IncomingTrack]) -> None:
        """WireListener: start a decode pipeline per new track, end those that stopped."""
        await self._sync_remotes(
            [track for track in tracks if track.kind == "audio"],
            self._remote_audios,
            self._start_remote_audio,
            self._end_remote_audio,
        )
        await self._sync_remotes(
            [track for track in tracks if track.kind == "video"],
            self._remote_videos,
            self._start_remote_video,
            self._end_remote_video,
        )

    async def _sync_remotes(
        self,
        tracks: list[IncomingTrack],
        remotes: Mapping[str, _RemoteVideo | _RemoteAudio],
        start: Callable[[IncomingTrack], None],
        end: Callable[[str], Awaitable[None]],
    ) -> None:
        """One kind's pipelines in line with ``tracks`` (by mid): new tracks started, stopped ones ended."""
        seen = {track.mid for track in tracks}
        for track in tracks:
            current = remotes.get(track.mid)
            if current is not None and current.track_sid == track.track_sid:
                continue
            if current is not None:
                await end(track.mid)
            start(track)
        for mid in [mid for mid in remotes if mid not in seen]:
            await end(mid)

    def _stream_sync(self, track: IncomingTrack) -> StreamSync:
        """The lip sync shared by the remote tracks of ``track``'s media stream (its a=msid stream id)."""
        key = (track.participant_sid, track.transceiver.remote_stream_id or track.track_sid)
        sync = self._stream_syncs.get(key)
        if sync is None:
            sync = self._stream_syncs[key] = StreamSync()
        return sync

    def _start_remote_video(self, track: IncomingTrack) -> None:
        pipeline = VideoReceivePipeline(track.transceiver.receiver, loop=self._loop)
        if self._e2ee is not None:
            pipeline.frame_transform = self._e2ee.cryptor(track.track_sid, track.participant_sid, local=False).decrypt
        pipeline.lip_sync = self._stream_sync(track)
        self._remote_videos[track.mid] = _RemoteVideo(track.track_sid, track.participant_sid, pipeline)
        self._listener.on_remote_video(track.track_sid, track.participant_sid)

    def _start_remote_audio(self, track: IncomingTrack) -> None:
        pipeline = AudioReceivePipeline(track.transceiver.receiver, loop=self._loop)
        if self._e2ee is not None:
            pipeline.frame_transform = self._e2ee.cryptor(track.track_sid, track.participant_sid, local=False).decrypt
        pipeline.lip_sync = self._stream_sync(track)
        self._remote_audios[track.mid] = _RemoteAudio(track.track_sid, track.participant_sid, pipeline)
        self._listener.on_remote_audio(track.track_sid, track.participant_sid)

    async def _end_remote_video(self, mid: str) -> None:
        remote = self._remote_videos.pop(mid, None)
        if remote is None:
            return
        await remote.pipeline.close()
        if self._e2ee is not None:
            self._e2ee.forget(remote.track_sid)
        self._listener.on_remote_video_ended(remote.track_sid)

    async def stop_remote_video(self, track_sid: str) -> None:
        """Stop decoding ``track_sid`` (video or audio) right away (we unsubscribed from it)."""
        for mid, remote in list(self._remote_videos.items()):
            if remote.track_sid == track_sid:
                await self._end_remote_video(mid)
        for mid, audio in list(self._remote_audios.items()):
            if audio.track_sid == track_sid:
                await self._end_remote_audio(mid)

    async def _end_remote_audio(self, mid: str) -> None:
        remote = self._remote_audios.pop(mid, None)
        if remote is None:
            return
        await remote.pipeline.close()
        if self._e2ee is not None:
            self._e2ee.forget(remote.track_sid)
        self._listener.on_remote_audio_ended(remote.track_sid)

    def route_remote_audio(self, track_sid: str, consumer: AudioConsumer) -> bool:
        """Send the decoded PCM of subscribed audio track ``track_sid`` to ``consumer`` from now on;
        False if the track is not being received."""
        for remote in self._remote_audios.values():
            if remote.track_sid == track_sid:

                def wanted() -> bool:
                    return consumer.has_sinks

                remote.pipeline.on_audio = consumer.push_audio
                remote.pipeline.has_consumers = wanted
                return True
        return False

    def remote_audio_pipeline(self, track_sid: str) -> AudioReceivePipeline | None:
        """The receive pipeline of a subscribed audio track, if any."""
        for remote in self._remote_audios.values():
            if remote.track_sid == track_sid:
                return remote.pipeline
        return None

    def route_remote_video(self, track_sid: str, consumer: FrameConsumer) -> bool:
        """Send the decoded frames of subscribed ``track_sid`` to ``consumer`` from now on
        (replacing any earlier consumer); False if the track is not being received."""
        pipeline = self.remote_pipeline(track_sid)
        if pipeline is None:
            return False

        def wanted() -> bool:
            return consumer.has_sinks

        pipeline.on_frame = consumer.push
        pipeline.has_consumers = wanted
        # a consumer may offer the memory decoded pictures go to (the media process's slots)
        pipeline.frame_memory = getattr(consumer, "frame_memory", None)
        pipeline.delivers_from_worker = bool(getattr(consumer, "thread_safe_push", False))
        return True

    async def get_stats(self) -> EngineStats:
        """A snapshot of the PeerConnections' and pipelines' counters (plain values)."""
        wire = self._wire
        published = {
            sid: (item.transceiver.mid, list(item.transceiver.sender.codecs), item.pipeline)
            for sid, item in self._published.items()
        }
        received = {
            remote.track_sid: (mid, list(remote.pipeline.negotiated_codecs), remote.pipeline)
            for mid, remote in self._remote_videos.items()
        }
        sent, got = pipeline_counters(published, received)
        publisher = pc_stats(wire.publisher) if wire is not None else None
        subscriber = None
        if wire is not None and not wire.single_pc:
            subscriber = pc_stats(wire.receiver_pc)
        return EngineStats(time.time(), publisher, subscriber, sent, got)

    def remote_pipeline(self, track_sid: str) -> VideoReceivePipeline | None:
        """The receive pipeline of a subscribed track, if any."""
        for remote in self._remote_videos.values():
            if remote.track_sid == track_sid:
                return remote.pipeline
        return None

    # -- requests ----------------------------------------------------------------

    def spawn(self, request: Coroutine[Any, Any, object]) -> None:
        """Run ``request`` (one of this session's coroutines) as a task the session owns:
        cancelled when it closes, an EngineError (it raced the end of the session) logged."""
        if self._wire is None:
            request.close()
            return
        self._wire.spawn(request)

    async def _send(self, request: signal_pb.SignalRequest) -> None:
        if self._wire is None or self._closed:
            raise EngineError("the room is not connected")
        await self._wire.send(request)

    async def update_subscription(self, track_sid: str, subscribe: bool) -> None:
        """Subscribe to or unsubscribe from a remote track."""
        request = signal_pb.SignalRequest()
        request.subscription.track_sids.append(track_sid)
        request.subscription.subscribe = subscribe
        await self._send(request)

    async def update_track_settings(self, track_sid: str, quality: int) -> None:
        """Ask for a simulcast layer of a remote track."""
        request = signal_pb.SignalRequest()
        request.track_setting.track_sids.append(track_sid)
        request.track_setting.disabled = False
        request.track_setting.quality = quality  # type: ignore[assignment]
        await self._send(request)

    async def publish_data(self, packet: models.DataPacket, reliable: bool, timeout: float = 10.0) -> None:
        """Send a DataPacket on the reliable or lossy data channel; raises ValueError
        for an oversized packet, EngineError when it cannot be sent."""
        if self._wire is None or self._closed:
            raise EngineError("the room is not connected")
        await self._wire.send_data(packet, reliable=reliable, timeout=timeout)

    async def update_metadata(
        self,
        *,
        metadata: str | None = None,
        name: str | None = None,
        attributes: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> signal_pb.RequestResponse:
        """Ask the server to change our metadata, name or attributes (an empty attribute
        value deletes the key); returns its RequestResponse (OK or a refusal).
        Raises EngineError when not connected or not answered within ``timeout``."""
        wire = self._wire
        if wire is None or self._closed:
            raise EngineError("the room is not connected")
        request = signal_pb.SignalRequest()
        update = request.update_metadata
        # in livekit's protocol an empty field leaves the value as it is
        update.metadata = metadata or ""
        update.name = name or ""
        update.attributes.update(attributes or {})
        update.request_id = wire.next_request_id()
        return await wire.request_response(request, update.request_id, timeout)

    async def set_subscription_permissions(self, permission: signal_pb.SubscriptionPermission) -> None:
        """Who may subscribe to our tracks (the server enforces it)."""
        await self._send(signal_pb.SignalRequest(subscription_permission=permission))

    async def mute_track(self, track_sid: str, muted: bool) -> None:
        """Tell the server a local track is (un)muted."""
        request = signal_pb.SignalRequest()
        request.mute.sid = track_sid
        request.mute.muted = muted
        await self._send(request)

    # -- publisher ---------------------------------------------------------------

    async def publish_video(
        self,
        *,
        cid: str,
        name: str,
        source: int,
        width: int,
        height: int,
        codec: str,
        simulcast: bool,
        max_bitrate: int,
        max_framerate: float,
        frame_metadata_features: tuple[int, ...] = (),
        timeout: float = 10.0,
    ) -> PublishedVideo:
        """Announce a video track, negotiate it and start its encode pipeline.

        ``frame_metadata_features`` (PacketTrailerFeature numbers) are announced in the
        AddTrackRequest and select what of each frame's metadata is sent."""
        wire = self._wire
        if wire is None or not self.connected:
            raise EngineError("the room is not connected")
        codec = normalize_codec(codec)
        if self._e2ee is not None and codec not in _E2EE_CODECS:
            # their payload formats read the bitstream, which encryption hides (and AV1 has its own wrapping)
            allowed = f"{', '.join(_E2EE_CODECS[:-1])} or {_E2EE_CODECS[-1]}"
            raise EngineError(f"an end-to-end encrypted room publishes {allowed}, not {codec}")
        layers: list[VideoLayerPlan] = plan_video_layers(
            width,
            height,
            simulcast=simulcast,
            max_bitrate=max_bitrate or None,
            max_framerate=max_framerate or None,
        )
        request = add_track_request(
            cid=cid,
            name=name,
            source=source,
            codec=codec,
            layers=layers,
            simulcast=simulcast,
            packet_trailer_features=frame_metadata_features,
        )
        if self._e2ee is not None:
            request.add_track.encryption = self._e2ee.config.encryption_type  # type: ignore[assignment]
        info = await wire.request_track(request, timeout)
        transceiver = wire.add_video_sender(cid, codec, layers, simulcast)
        pipeline = VideoPublishPipeline(
            transceiver.sender,
            codec=codec,
            layers=layers,
            simulcast=simulcast,
            frame_metadata_features=frozenset(frame_metadata_features),
            frame_transform=self._local_cryptor(info.sid),
            loop=self._loop,
        )
        try:
            await asyncio.gather(wire.negotiate(timeout), pipeline.warm_up())
        except BaseException:
            await pipeline.close()
            raise
        published = PublishedVideo(info=info, pipeline=pipeline, transceiver=transceiver)
        self._published[info.sid] = published
        return published

    async def unpublish_video(self, track_sid: str, timeout: float = 10.0) -> None:
        """Stop sending a published track and renegotiate without it."""
        await self._stop_sending(self._published.pop(track_sid, None), timeout)

    async def publish_audio(
        self,
        *,
        cid: str,
        name: str,
        source: int,
        num_channels: int,
        dtx: bool = True,
        bitrate: int = 0,
        timeout: float = 10.0,
    ) -> PublishedAudio:
        """Announce an Opus audio track, negotiate it and start its encode pipeline.

        ``bitrate`` is the Opus bitrate (0: 32 kbps mono, 64 kbps stereo).
        """
        wire = self._wire
        if wire is None or not self.connected:
            raise EngineError("the room is not connected")
        channels = 2 if num_channels >= 2 else 1
        request = add_audio_track_request(cid=cid, name=name, source=source, stereo=channels == 2, dtx=dtx)
        if self._e2ee is not None:
            request.add_track.encryption = self._e2ee.config.encryption_type  # type: ignore[assignment]
        info = await wire.request_track(request, timeout)
        transceiver = wire.add_audio_sender(cid)
        pipeline = AudioPublishPipeline(
            transceiver.sender,
            num_channels=channels,
            bitrate=bitrate or (64_000 if channels == 2 else 32_000),
            dtx=dtx,
            loop=self._loop,
        )
        pipeline.frame_transform = self._local_cryptor(info.sid)
        try:
            await wire.negotiate(timeout)
        except BaseException:
            await pipeline.close()
            raise
        published = PublishedAudio(info=info, pipeline=pipeline, transceiver=transceiver)
        self._published_audio[info.sid] = published
        return published

    def _local_cryptor(self, track_sid: str) -> FrameTransform | None:
        e2ee, join = self._e2ee, self.join
        if e2ee is None or join is None:
            return None
        return e2ee.cryptor(track_sid, join.participant.sid, local=True).encrypt

    # -- end-to-end encryption (keys come derived: see kitewire.rtc.e2ee) ----------------

    async def set_e2ee_key(self, identity: str | None, key_index: int, keys: KeySet) -> None:
        """Set a slot of the shared key (identity None) or of one participant's key."""
        if self._e2ee is not None:
            self._e2ee.set_key(identity, key_index, keys)

    async def set_e2ee_enabled(self, enabled: bool) -> None:
        """E2EEManager.set_enabled: frames go (and are taken) as they are while disabled."""
        if self._e2ee is not None:
            self._e2ee.enabled = enabled

    async def update_frame_cryptor(self, track_sid: str, enabled: bool | None, key_index: int | None) -> None:
        """FrameCryptor.set_enabled / set_key_index of one track."""
        if self._e2ee is not None:
            self._e2ee.update_cryptor(track_sid, enabled, key_index)

    async def unpublish_audio(self, track_sid: str, timeout: float = 10.0) -> None:
        """Stop sending a published audio track and renegotiate without it."""
        await self._stop_sending(self._published_audio.pop(track_sid, None), timeout)

    async def _stop_sending(self, published: PublishedVideo | PublishedAudio | None, timeout: float) -> None:
        if published is None:
            return
        await published.pipeline.close()
        if self._e2ee is not None:
            self._e2ee.forget(published.info.sid)
        published.transceiver.stop()
        if self.connected and self._wire is not None:
            with contextlib.suppress(EngineError):
                await self._wire.negotiate(timeout)

    # -- leaving -----------------------------------------------------------------

    async def disconnect(self, reason: int = models.DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room and close everything. Idempotent."""
        await self._shutdown(reason, send_leave=True)

    async def abandon(self) -> None:
        """Close everything of this session without telling the server or the
        listener: the caller replaces it with a fresh session (a full rejoin)."""
        await self._shutdown(int(models.DisconnectReason.SIGNAL_CLOSE), send_leave=False, notify=False)

    async def _shutdown(self, reason: int, *, send_leave: bool, notify: bool = True) -> None:
        # The teardown runs as its own task so that a caller cancelled half-way
        # (a disconnect() racing a reconnect) cannot leave PeerConnections open;
        # every later caller waits for that same teardown to finish.
        if self._shutdown_task is None:
            self._closed = True
            self._shutdown_task = self._loop.create_task(self._tear_down(reason, send_leave=send_leave, notify=notify))
        await asyncio.shield(self._shutdown_task)

    async def _tear_down(self, reason: int, *, send_leave: bool, notify: bool) -> None:
        for published in list(self._published.values()):
            await published.pipeline.close()
        self._published.clear()
        for published_audio in list(self._published_audio.values()):
            await published_audio.pipeline.close()
        self._published_audio.clear()
        for mid in list(self._remote_videos):
            await self._end_remote_video(mid)
        for mid in list(self._remote_audios):
            await self._end_remote_audio(mid)
        if self._wire is not None:
            await self._wire.close(leave=send_leave)
        if notify:
            self._listener.on_disconnected(reason)
