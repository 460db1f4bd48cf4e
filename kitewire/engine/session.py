"""One client participant's session with a LiveKit server.

The flow follows LiveKit's two-connection clients: after the signal join, the
server offers on the *subscriber* PeerConnection (we answer) whenever the set of
tracks sent to us changes; to publish, we send an AddTrackRequest, wait for the
TrackPublishedResponse, add a transceiver whose msid track id is the request's
cid, and offer on the *publisher* PeerConnection (the server answers). ICE
candidates trickle both ways through the signal connection.

Reconnection is a full restart, as the official SDKs do when a resume is not
possible (and kitewire's server never resumes): a session that loses its signal
socket or one of its PeerConnections reports ``on_connection_lost`` and stays
as it is; the Room above then calls :meth:`RtcEngine.abandon` on it and joins again
with a fresh RtcEngine (new signal connection, new PeerConnections).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.media import VideoLayerPlan, normalize_codec, plan_video_layers
from kitewire.signal import SignalClient, SignalConnectError
from kitewire.signal import connect as signal_connect
from kitewire.transport import (
    DEFAULT_CODECS,
    IceCandidateInit,
    PeerConnection,
    PeerConnectionConfig,
    SendEncoding,
    Transceiver,
)

from .publisher import VideoPublishPipeline
from .receiver import VideoReceivePipeline

logger = logging.getLogger("kitewire.engine")

PUBLISHER = signal_pb.SignalTarget.PUBLISHER
SUBSCRIBER = signal_pb.SignalTarget.SUBSCRIBER

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class EngineError(Exception):
    """A request to the server failed (not connected, refused, or timed out)."""


class EngineListener(Protocol):
    """What the session reports to the Room above it (all called on the event loop)."""

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        """The server's ParticipantUpdate: participants that joined, changed or left."""

    def on_remote_video(self, track_sid: str, participant_sid: str, pipeline: VideoReceivePipeline) -> None:
        """Media of a subscribed video track started arriving through ``pipeline``."""

    def on_remote_video_ended(self, track_sid: str) -> None:
        """``track_sid`` is no longer received (unsubscribed, unpublished or renegotiated away)."""

    def on_local_track_unpublished(self, track_sid: str) -> None:
        """The server unpublished one of our tracks."""

    def on_local_track_subscribed(self, track_sid: str) -> None:
        """Another participant subscribed to one of our tracks."""

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        """The server asks us to (un)mute one of our tracks."""

    def on_room_update(self, room: models.Room) -> None:
        """Room metadata or counters changed."""

    def on_disconnected(self, reason: int) -> None:
        """The session ended; ``reason`` is a DisconnectReason."""

    def on_connection_lost(self, reason: int) -> None:
        """The signal connection dropped or a PeerConnection failed, and the server
        did not forbid coming back: the session is unusable but NOT torn down; the
        listener decides whether to rejoin (then :meth:`RtcEngine.abandon` this one)
        or to give up (:meth:`RtcEngine.disconnect`)."""


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


def _parse_msid(stream_id: str | None, track_id: str | None) -> tuple[str, str]:
    """(participant sid, track sid) from a subscriber m-line's a=msid.

    LiveKit servers write stream id "PA_xxx|TR_xxx" and track id "TR_xxx"; older
    ones the participant sid alone as stream id.
    """
    stream = stream_id or ""
    participant_sid, _, embedded_track = stream.partition("|")
    track_sid = track_id or ""
    if not track_sid.startswith("TR_") and embedded_track:
        track_sid = embedded_track
    return participant_sid, track_sid


class RtcEngine:
    """Signal connection plus publisher and subscriber PeerConnections."""

    def __init__(self, listener: EngineListener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._signal: SignalClient | None = None
        self._publisher: PeerConnection | None = None
        self._subscriber: PeerConnection | None = None
        self._pending_candidates: dict[int, list[IceCandidateInit | None]] = {PUBLISHER: [], SUBSCRIBER: []}
        self._remote_set: dict[int, bool] = {PUBLISHER: False, SUBSCRIBER: False}
        self._pending_publishes: dict[str, asyncio.Future[models.TrackInfo]] = {}
        self._publisher_answer: asyncio.Future[signal_pb.SessionDescription] | None = None
        self._publisher_lock = asyncio.Lock()
        self._subscriber_lock = asyncio.Lock()
        self._remote_videos: dict[str, _RemoteVideo] = {}  # by mid
        self._published: dict[str, PublishedVideo] = {}  # by track sid
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._loss_reported = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._offer_ids = itertools.count(1)
        self.join: signal_pb.JoinResponse | None = None

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and the end of the session."""
        return self._signal is not None and not self._closed

    # -- connecting --------------------------------------------------------------

    async def connect(self, url: str, token: str, *, auto_subscribe: bool, timeout: float) -> signal_pb.JoinResponse:
        """Join the room; returns the server's JoinResponse. Raises EngineError."""
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise EngineError(f"expected a ws:// or wss:// server URL, got {url!r} ({exc})") from None
        try:
            # /rtc (two PeerConnections), which every LiveKit server version speaks
            signal, join = await signal_connect(url, token, auto_subscribe=auto_subscribe, legacy=True, timeout=timeout)
        except SignalConnectError as exc:
            raise EngineError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise EngineError(f"could not join {url}: {exc}") from None
        self._signal = signal
        self.join = join
        config = PeerConnectionConfig(loopback_only=host in _LOOPBACK_HOSTS)
        self._publisher = self._make_peer_connection(PUBLISHER, config)
        self._subscriber = self._make_peer_connection(
            SUBSCRIBER, PeerConnectionConfig(loopback_only=config.loopback_only)
        )
        self._reader = self._loop.create_task(self._read_signal())
        return join

    def _make_peer_connection(self, target: int, config: PeerConnectionConfig) -> PeerConnection:
        pc = PeerConnection(config)

        def on_state(state: str) -> None:
            # only a failure after we were up counts as a lost connection; a
            # connection that never came up is reported by the call waiting on it
            if state == "failed":
                self._report_loss(int(models.DisconnectReason.MEDIA_FAILURE))

        pc.on_connection_state_change = on_state

        def on_candidate(candidate: IceCandidateInit | None) -> None:
            if candidate is None or not candidate.candidate:
                return
            self._spawn(self._send_trickle(candidate, target))

        pc.on_ice_candidate = on_candidate
        return pc

    async def _send_trickle(self, candidate: IceCandidateInit, target: int) -> None:
        if self._signal is not None:
            await self._signal.send_trickle(candidate.to_json(), target)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)

    def _task_finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("engine task failed", exc_info=task.exception())

    # -- signal messages ---------------------------------------------------------

    async def _read_signal(self) -> None:
        signal = self._signal
        assert signal is not None
        reason = models.DisconnectReason.SIGNAL_CLOSE
        # a socket that just drops may be rejoined; so may a leave asking for it
        reconnectable = True
        try:
            while True:
                try:
                    message = await signal.recv()
                except ValueError as exc:
                    logger.warning("bad signal message from the server: %s", exc)
                    reason = models.DisconnectReason.STATE_MISMATCH
                    reconnectable = False
                    break
                if message is None:
                    break
                if message.WhichOneof("message") == "leave":
                    leave = message.leave
                    reason = leave.reason or models.DisconnectReason.SERVER_SHUTDOWN
                    reconnectable = leave.action in (
                        signal_pb.LeaveRequest.RECONNECT,
                        signal_pb.LeaveRequest.RESUME,
                    ) or (leave.action == signal_pb.LeaveRequest.DISCONNECT and leave.can_reconnect)
                    break
                try:
                    self._handle(message)
                except Exception:
                    logger.exception("handling %s failed", message.WhichOneof("message"))
        except asyncio.CancelledError:
            return
        if self._closed:
            return
        if reconnectable:
            self._report_loss(int(reason))
        else:
            self._spawn(self._shutdown(int(reason), send_leave=False))

    def _report_loss(self, reason: int) -> None:
        if self._closed or self._loss_reported or self._signal is None:
            return
        self._loss_reported = True
        self._listener.on_connection_lost(reason)

    def _handle(self, message: signal_pb.SignalResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "offer":
            self._spawn(self._answer_subscriber(message.offer))
        elif kind == "answer":
            if self._publisher_answer is not None and not self._publisher_answer.done():
                self._publisher_answer.set_result(message.answer)
        elif kind == "trickle":
            self._spawn(self._add_candidate(message.trickle))
        elif kind == "update":
            self._listener.on_participant_update(list(message.update.participants))
        elif kind == "track_published":
            future = self._pending_publishes.get(message.track_published.cid)
            if future is not None and not future.done():
                future.set_result(message.track_published.track)
        elif kind == "track_unpublished":
            self._listener.on_local_track_unpublished(message.track_unpublished.track_sid)
        elif kind == "track_subscribed":
            self._listener.on_local_track_subscribed(message.track_subscribed.track_sid)
        elif kind == "mute":
            self._listener.on_track_mute_requested(message.mute.sid, message.mute.muted)
        elif kind == "room_update":
            self._listener.on_room_update(message.room_update.room)
        elif kind == "request_response":
            self._refused(message.request_response)

    def _refused(self, response: signal_pb.RequestResponse) -> None:
        if response.reason == signal_pb.RequestResponse.OK:
            return
        reason = signal_pb.RequestResponse.Reason.Name(response.reason)
        error = EngineError(f"the server refused the request: {reason}: {response.message}")
        # which publish it answers: the echoed request when the server includes it,
        # else the cid named in the message, else the only one waiting
        if response.WhichOneof("request") == "add_track":
            cids = [response.add_track.cid]
        else:
            waiting = [cid for cid, future in self._pending_publishes.items() if not future.done()]
            named = [cid for cid in waiting if cid in response.message]
            cids = named or (waiting if len(waiting) == 1 else [])
        if not cids:
            logger.warning("%s", error)
        for cid in cids:
            future = self._pending_publishes.get(cid)
            if future is not None and not future.done():
                future.set_exception(error)

    async def _add_candidate(self, trickle: signal_pb.TrickleRequest) -> None:
        target = int(trickle.target)
        pc = self._subscriber if target == SUBSCRIBER else self._publisher
        if pc is None:
            return
        try:
            candidate = IceCandidateInit.from_json(trickle.candidateInit)
        except ValueError as exc:
            logger.warning("ignoring malformed ICE candidate from the server: %s", exc)
            return
        if not self._remote_set[target]:
            self._pending_candidates[target].append(candidate)
            return
        try:
            await pc.add_ice_candidate(candidate)
        except ValueError as exc:
            logger.warning("ignoring ICE candidate the transport refused: %s", exc)

    async def _flush_candidates(self, target: int, pc: PeerConnection) -> None:
        self._remote_set[target] = True
        pending, self._pending_candidates[target] = self._pending_candidates[target], []
        for candidate in pending:
            try:
                await pc.add_ice_candidate(candidate)
            except ValueError as exc:
                logger.warning("ignoring ICE candidate the transport refused: %s", exc)

    # -- subscriber --------------------------------------------------------------

    async def _answer_subscriber(self, offer: signal_pb.SessionDescription) -> None:
        pc, signal = self._subscriber, self._signal
        if pc is None or signal is None:
            return
        async with self._subscriber_lock:
            try:
                await pc.set_remote_description(offer.sdp, "offer")
            except ValueError as exc:
                logger.warning("the server's subscriber offer was refused: %s", exc)
                return
            await self._flush_candidates(SUBSCRIBER, pc)
            answer = await pc.create_answer()
            await signal.send_answer(answer, offer.id)
            await self._sync_remote_videos(pc, dict(offer.mid_to_track_id))

    async def _sync_remote_videos(self, pc: PeerConnection, mid_to_track: dict[str, str]) -> None:
        seen: set[str] = set()
        for transceiver in pc.transceivers:
            mid = transceiver.mid
            if mid is None or transceiver.kind != "video" or transceiver.stopped:
                continue
            if transceiver.current_direction in ("inactive", "sendonly"):
                continue
            participant_sid, track_sid = _parse_msid(transceiver.remote_stream_id, transceiver.remote_track_id)
            track_sid = mid_to_track.get(mid, track_sid)
            if not track_sid:
                continue
            seen.add(mid)
            current = self._remote_videos.get(mid)
            if current is not None and current.track_sid == track_sid:
                continue
            if current is not None:
                await self._end_remote_video(mid)
            pipeline = VideoReceivePipeline(transceiver.receiver, loop=self._loop)
            self._remote_videos[mid] = _RemoteVideo(track_sid, participant_sid, pipeline)
            self._listener.on_remote_video(track_sid, participant_sid, pipeline)
        for mid in [mid for mid in self._remote_videos if mid not in seen]:
            await self._end_remote_video(mid)

    async def _end_remote_video(self, mid: str) -> None:
        remote = self._remote_videos.pop(mid, None)
        if remote is None:
            return
        await remote.pipeline.close()
        self._listener.on_remote_video_ended(remote.track_sid)

    async def stop_remote_video(self, track_sid: str) -> None:
        """Stop decoding ``track_sid`` right away (we unsubscribed from it)."""
        for mid, remote in list(self._remote_videos.items()):
            if remote.track_sid == track_sid:
                await self._end_remote_video(mid)

    def remote_pipeline(self, track_sid: str) -> VideoReceivePipeline | None:
        """The receive pipeline of a subscribed track, if any."""
        for remote in self._remote_videos.values():
            if remote.track_sid == track_sid:
                return remote.pipeline
        return None

    # -- requests ----------------------------------------------------------------

    async def _send(self, request: signal_pb.SignalRequest) -> None:
        if self._signal is None or self._closed or not await self._signal.send(request):
            raise EngineError("the room is not connected")

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
        timeout: float = 10.0,
    ) -> PublishedVideo:
        """Announce a video track, negotiate it and start its encode pipeline."""
        pc = self._publisher
        if pc is None or not self.connected:
            raise EngineError("the room is not connected")
        codec = normalize_codec(codec)
        layers: list[VideoLayerPlan] = plan_video_layers(
            width,
            height,
            simulcast=simulcast,
            max_bitrate=max_bitrate or None,
            max_framerate=max_framerate or None,
        )
        request = signal_pb.SignalRequest()
        add = request.add_track
        add.cid = cid
        add.name = name
        add.type = models.TrackType.VIDEO
        add.width = width
        add.height = height
        add.source = source  # type: ignore[assignment]
        for plan in layers:
            layer = add.layers.add()
            layer.quality = plan.quality  # type: ignore[assignment]
            layer.width = plan.width
            layer.height = plan.height
            layer.bitrate = plan.max_bitrate
            if simulcast:
                layer.rid = plan.rid
        simulcast_codec = add.simulcast_codecs.add()
        simulcast_codec.codec = codec.lower()
        simulcast_codec.cid = cid
        future: asyncio.Future[models.TrackInfo] = self._loop.create_future()
        self._pending_publishes[cid] = future
        try:
            await self._send(request)
            info = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise EngineError(f"the server did not accept track {name!r} within {timeout} s") from None
        finally:
            self._pending_publishes.pop(cid, None)

        codecs = [c for c in DEFAULT_CODECS if c.kind == "video" and normalize_codec(c.mime_type) == codec]
        encodings = None
        if simulcast:
            encodings = [SendEncoding(rid=plan.rid, ssrc=_random_ssrc()) for plan in layers]
        transceiver = pc.add_transceiver(
            "video",
            "sendonly",
            codecs=codecs,
            send_encodings=encodings,
            stream_id=cid,
            track_id=cid,
        )
        pipeline = VideoPublishPipeline(
            transceiver.sender, codec=codec, layers=layers, simulcast=simulcast, loop=self._loop
        )
        try:
            await asyncio.gather(self._negotiate_publisher(timeout), pipeline.warm_up())
        except BaseException:
            await pipeline.close()
            raise
        published = PublishedVideo(info=info, pipeline=pipeline, transceiver=transceiver)
        self._published[info.sid] = published
        return published

    async def _negotiate_publisher(self, timeout: float) -> None:
        pc, signal = self._publisher, self._signal
        if pc is None or signal is None:
            raise EngineError("the room is not connected")
        async with self._publisher_lock:
            offer = await pc.create_offer()
            self._publisher_answer = self._loop.create_future()
            if not await signal.send_offer(offer, next(self._offer_ids)):
                raise EngineError("the room is not connected")
            try:
                answer = await asyncio.wait_for(self._publisher_answer, timeout)
            except TimeoutError:
                raise EngineError(f"the server did not answer the publisher offer within {timeout} s") from None
            await pc.set_remote_description(answer.sdp, "answer")
            await self._flush_candidates(PUBLISHER, pc)
        try:
            await pc.wait_connected(timeout)
        except (TimeoutError, ConnectionError) as exc:
            raise EngineError(f"the publisher connection did not come up: {exc}") from None

    async def unpublish_video(self, track_sid: str, timeout: float = 10.0) -> None:
        """Stop sending a published track and renegotiate without it."""
        published = self._published.pop(track_sid, None)
        if published is None:
            return
        await published.pipeline.close()
        published.transceiver.stop()
        if self.connected:
            with contextlib.suppress(EngineError):
                await self._negotiate_publisher(timeout)

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
        for future in self._pending_publishes.values():
            if not future.done():
                future.set_exception(EngineError("the room disconnected"))
        if self._publisher_answer is not None and not self._publisher_answer.done():
            self._publisher_answer.cancel()
        for published in list(self._published.values()):
            await published.pipeline.close()
        self._published.clear()
        for mid in list(self._remote_videos):
            await self._end_remote_video(mid)
        if self._signal is not None:
            with contextlib.suppress(Exception):
                await self._signal.close(leave=send_leave)
        current = asyncio.current_task()
        if self._reader is not None and self._reader is not current:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for pc in (self._publisher, self._subscriber):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        others = [task for task in self._tasks if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if notify:
            self._listener.on_disconnected(reason)


def _random_ssrc() -> int:
    import random

    return random.randint(1, 0xFFFFFFFE)
