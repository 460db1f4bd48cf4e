"""The LiveKit client protocol, written once: the wire side of one participant.

:class:`WireClient` joins a room and keeps the participant's PeerConnections
negotiated; what rides on them (encoders and decoders in the SDK's engine,
replayed loops and packet counters in the load test) is up to its user.

Two join forms, as LiveKit servers speak them:

* ``/rtc/v1`` (livekit 1.2's SDKs): ONE PeerConnection for both directions. The
  join request carries the client's first offer, with receive-only slots
  (:data:`JOIN_AUDIO_SLOTS` audio, :data:`JOIN_VIDEO_SLOTS` video) and the data
  channels; the server answers it at once, sends media on those slots, names the
  tracks in ``mid_to_track_id`` and asks for more slots (and a new offer) with
  ``MediaSectionsRequirement``. The client always offers.
* legacy ``/rtc`` (every LiveKit server version): two PeerConnections. The client
  offers on the publisher one; the server offers on the subscriber one, and the
  client answers.

``join_mode="auto"`` tries ``/rtc/v1`` and falls back to ``/rtc`` when the server
answers the v1 path with 404 (LiveKit servers before v1 existed).

ICE candidates trickle both ways through the signal connection; the server's
candidates that arrive before their PeerConnection has a remote description wait
in a bounded queue (:data:`MAX_PENDING_CANDIDATES` per PeerConnection).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.media import VideoLayerPlan, normalize_codec
from kitewire.signal import SignalClient
from kitewire.signal import connect as signal_connect
from kitewire.transport import (
    DEFAULT_CODECS,
    IceCandidateInit,
    PeerConnection,
    PeerConnectionConfig,
    SendEncoding,
    Transceiver,
)

from .data_channels import DataChannels
from .handle import EngineError, spawn_owned

__all__ = [
    "JOIN_AUDIO_SLOTS",
    "JOIN_VIDEO_SLOTS",
    "MAX_PENDING_CANDIDATES",
    "EngineError",
    "IncomingTrack",
    "JoinMode",
    "WireClient",
    "WireListener",
    "add_audio_track_request",
    "add_track_request",
    "parse_msid",
    "spawn_owned",
]

logger = logging.getLogger("kitewire.engine")

PUBLISHER = signal_pb.SignalTarget.PUBLISHER
SUBSCRIBER = signal_pb.SignalTarget.SUBSCRIBER

#: Receive-only slots in a ``/rtc/v1`` join offer, as livekit's SDKs offer them.
JOIN_AUDIO_SLOTS = 3
JOIN_VIDEO_SLOTS = 3
#: Server candidates kept per PeerConnection while it has no remote description
#: (a loopback server sends one or two; a hostile one must not grow the list).
MAX_PENDING_CANDIDATES = 64
#: Requests waiting for their RequestResponse at once (set_metadata and the like).
MAX_PENDING_REQUESTS = 64
#: Receive-only slots added for one ``MediaSectionsRequirement`` at most.
MAX_SECTIONS_PER_REQUEST = 64
# Seconds a closing signal socket or PeerConnection may take before it is left behind.
_CLOSE_TIMEOUT = 5.0

#: ``"v1"``: ``/rtc/v1`` only; ``"legacy"``: ``/rtc`` only; ``"auto"``: v1, then ``/rtc`` on 404.
JoinMode = Literal["auto", "v1", "legacy"]
# signal.connect's ``legacy`` for each mode (None: v1, then /rtc on 404).
_LEGACY_BY_MODE: dict[str, bool | None] = {"auto": None, "v1": False, "legacy": True}


@dataclass(frozen=True)
class IncomingTrack:
    """A remote track arriving on one m-line of the receiving PeerConnection."""

    mid: str
    kind: str
    participant_sid: str
    track_sid: str
    transceiver: Transceiver


class WireListener(Protocol):
    """What a :class:`WireClient` reports to its user (all called on the event loop)."""

    def on_signal_message(self, message: signal_pb.SignalResponse) -> None:
        """A server message the wire client does not consume itself (update, mute, track_subscribed, ...)."""

    async def on_incoming_tracks(self, tracks: list[IncomingTrack]) -> None:
        """After a negotiation: every track now arriving (a track missing from the list stopped)."""

    def on_signal_closed(self, reason: int, reconnectable: bool, detail: str) -> None:
        """The signal connection ended without :meth:`WireClient.close`; ``reason`` is a DisconnectReason.

        ``reconnectable`` is False when the server forbade coming back (or spoke garbage)."""

    def on_media_failed(self) -> None:
        """One of the PeerConnections failed."""

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """A DataPacket arrived on one of the data channels (``reliable``: not on ``_lossy``)."""


def parse_msid(stream_id: str | None, track_id: str | None) -> tuple[str, str]:
    """(participant sid, track sid) from a receiving m-line's a=msid.

    LiveKit servers write stream id "PA_xxx|TR_xxx" and track id "TR_xxx"; older
    ones the participant sid alone as stream id.
    """
    participant_sid, _, embedded_track = (stream_id or "").partition("|")
    track_sid = track_id or ""
    if not track_sid.startswith("TR_") and embedded_track:
        track_sid = embedded_track
    return participant_sid, track_sid


def add_track_request(
    *,
    cid: str,
    name: str,
    source: int,
    codec: str,
    layers: list[VideoLayerPlan],
    simulcast: bool,
    packet_trailer_features: tuple[int, ...] = (),
) -> signal_pb.SignalRequest:
    """The AddTrackRequest announcing a video track sent as ``layers``, smallest first (rids only when simulcast).

    The track's size is its top layer's; ``packet_trailer_features`` tell subscribers
    which frame metadata its frames carry (LiveKit's packet trailer)."""
    if not layers:
        raise ValueError("layers: expected at least one video layer, got none")
    request = signal_pb.SignalRequest()
    add = request.add_track
    add.cid = cid
    add.name = name
    add.type = models.TrackType.VIDEO
    add.width = layers[-1].width
    add.height = layers[-1].height
    add.source = source  # type: ignore[assignment]
    for plan in layers:
        layer = add.layers.add()
        layer.quality = plan.quality  # type: ignore[assignment]
        layer.width = plan.width
        layer.height = plan.height
        layer.bitrate = plan.max_bitrate
        if simulcast:
            layer.rid = plan.rid
    add.packet_trailer_features.extend(packet_trailer_features)  # type: ignore[arg-type]
    simulcast_codec = add.simulcast_codecs.add()
    simulcast_codec.codec = normalize_codec(codec).lower()
    simulcast_codec.cid = cid
    return request


def add_audio_track_request(*, cid: str, name: str, source: int, stereo: bool, dtx: bool) -> signal_pb.SignalRequest:
    """The AddTrackRequest announcing an Opus audio track (livekit's stereo / DTX flags and features)."""
    request = signal_pb.SignalRequest()
    add = request.add_track
    add.cid = cid
    add.name = name
    add.type = models.TrackType.AUDIO
    add.source = source  # type: ignore[assignment]
    add.stereo = stereo
    add.disable_dtx = not dtx
    add.disable_red = True  # answers reject red: plain Opus only
    if stereo:
        add.audio_features.append(models.AudioTrackFeature.TF_STEREO)
    if not dtx:
        add.audio_features.append(models.AudioTrackFeature.TF_NO_DTX)
    return request


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _leave_is_reconnectable(leave: signal_pb.LeaveRequest) -> bool:
    if leave.action in (signal_pb.LeaveRequest.RECONNECT, signal_pb.LeaveRequest.RESUME):
        return True
    return leave.action == signal_pb.LeaveRequest.DISCONNECT and leave.can_reconnect


class WireClient:
    """Signal connection and PeerConnections of one participant, negotiated as LiveKit servers expect.

    After :meth:`connect`, :attr:`single_pc` says which join form the server took;
    :attr:`publisher` is the PeerConnection the client offers on (in single-PC
    mode the only one) and :attr:`receiver_pc` the one remote tracks arrive on.
    """

    def __init__(self, listener: WireListener, config: PeerConnectionConfig) -> None:
        self._listener = listener
        self._config = config
        self._loop = asyncio.get_running_loop()
        self.signal: SignalClient | None = None
        self.join: signal_pb.JoinResponse | None = None
        self.single_pc = False
        self.publisher: PeerConnection | None = None
        self.subscriber: PeerConnection | None = None
        self._pending_candidates: dict[int, list[IceCandidateInit]] = {PUBLISHER: [], SUBSCRIBER: []}
        self._pending_publishes: dict[str, asyncio.Future[models.TrackInfo]] = {}
        self._pending_requests: dict[int, asyncio.Future[signal_pb.RequestResponse]] = {}
        self._request_ids = itertools.count(1)
        self.data = DataChannels(listener.on_data_packet)
        self._data_lock = asyncio.Lock()
        self._answer: asyncio.Future[signal_pb.SessionDescription] | None = None
        self._offer_lock = asyncio.Lock()
        self._subscriber_lock = asyncio.Lock()
        self._offer_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def receiver_pc(self) -> PeerConnection | None:
        """The PeerConnection remote tracks arrive on."""
        return self.publisher if self.single_pc else self.subscriber

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`."""
        return self.signal is not None and not self._closed

    # -- joining -----------------------------------------------------------------

    async def connect(
        self, url: str, token: str, *, auto_subscribe: bool, join_mode: JoinMode = "auto", timeout: float
    ) -> signal_pb.JoinResponse:
        """Join; returns the server's JoinResponse. Raises SignalConnectError (refused) or OSError/ValueError."""
        if join_mode not in _LEGACY_BY_MODE:
            raise ValueError(f"join mode: expected 'auto', 'v1' or 'legacy', got {join_mode!r}")
        legacy = _LEGACY_BY_MODE[join_mode]
        request = signal_pb.JoinRequest()
        request.connection_settings.auto_subscribe = auto_subscribe
        pc = answer = None
        if legacy is not True:
            # The v1 join carries the first offer; signal.connect drops it if it falls back to /rtc.
            pc = self._new_pc(PUBLISHER)
            # livekit clients always offer their data channels, and receive on slots of their own offer.
            self.data.open_own(pc)
            self._add_receive_slots(pc, JOIN_VIDEO_SLOTS, JOIN_AUDIO_SLOTS)
            offer = request.publisher_offer
            offer.type, offer.sdp, offer.id = "offer", await pc.create_offer(), next(self._offer_ids)
            answer = self._answer = self._loop.create_future()
        try:
            signal, join = await signal_connect(url, token, join_request=request, legacy=legacy, timeout=timeout)
        except BaseException:
            await self._drop_join_offer(pc)
            raise
        self.signal, self.join = signal, join
        self._reader = self._loop.create_task(self._read_signal())
        if not signal.single_pc_mode or pc is None or answer is None:
            await self._drop_join_offer(pc)  # an older server: /rtc, two PeerConnections
            return join
        self.single_pc, self.publisher = True, pc
        # The answer to the join's offer comes right after the JoinResponse. It is
        # applied once the caller has taken in the JoinResponse, as the server's first
        # offer is in the two-PeerConnection form, so the tracks it names are known
        # by then; the lock (taken without suspending) keeps later offers behind it.
        await self._offer_lock.acquire()
        self.spawn(self._apply_join_answer(pc, answer, request.publisher_offer.id, timeout))
        return join

    async def _drop_join_offer(self, pc: PeerConnection | None) -> None:
        self._answer = None
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()

    async def _apply_join_answer(
        self, pc: PeerConnection, answer: asyncio.Future[signal_pb.SessionDescription], offer_id: int, timeout: float
    ) -> None:
        try:
            await self._apply_answer(pc, answer, offer_id, timeout)
        except EngineError as exc:
            if not self._closed:
                logger.warning("%s", exc)
                self._listener.on_media_failed()
        finally:
            self._offer_lock.release()

    def _new_pc(self, target: int) -> PeerConnection:
        pc = PeerConnection(self._config)

        def on_state(state: str) -> None:
            # only a failure after we were up counts; a connection that never
            # came up is reported by the call waiting on it
            if state == "failed" and not self._closed:
                self._listener.on_media_failed()

        def on_candidate(candidate: IceCandidateInit | None) -> None:
            # Candidates gathered before the join are also in the offer's SDP.
            if candidate is not None and candidate.candidate and self.signal is not None and not self._closed:
                self.spawn(self.signal.send_trickle(candidate.to_json(), target))

        pc.on_connection_state_change = on_state
        pc.on_ice_candidate = on_candidate
        pc.on_data_channel = self.data.take_remote
        return pc

    def spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        """Run ``coroutine`` as a task owned by this client (cancelled by :meth:`close`; failures logged)."""
        spawn_owned(self._loop, self._tasks, coroutine, "wire task")

    # -- signal messages ---------------------------------------------------------

    async def _read_signal(self) -> None:
        signal = self.signal
        assert signal is not None
        reason = int(models.DisconnectReason.SIGNAL_CLOSE)
        detail = "the server closed the signal connection"
        # a socket that just drops may be rejoined; so may a leave asking for it
        reconnectable = True
        try:
            while True:
                try:
                    message = await signal.recv()
                except ValueError as exc:
                    reason, reconnectable = int(models.DisconnectReason.STATE_MISMATCH), False
                    detail = f"bad signal message from the server: {exc}"
                    logger.warning("%s", detail)
                    break
                if message is None:
                    break
                if message.WhichOneof("message") == "leave":
                    leave = message.leave
                    reason = int(leave.reason or models.DisconnectReason.SERVER_SHUTDOWN)
                    reconnectable = _leave_is_reconnectable(leave)
                    detail = f"the server disconnected us ({models.DisconnectReason.Name(reason)})"
                    break
                try:
                    self._handle(message)
                except Exception:
                    logger.exception("handling %s failed", message.WhichOneof("message"))
        except asyncio.CancelledError:
            return
        self._fail_waiting(detail)
        if not self._closed:
            self._listener.on_signal_closed(reason, reconnectable, detail)

    def _handle(self, message: signal_pb.SignalResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "offer":
            self.spawn(self._answer_subscriber(message.offer))
        elif kind == "answer":
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(message.answer)
        elif kind == "trickle":
            self.spawn(self._add_candidate(message.trickle))
        elif kind == "media_sections_requirement":
            requirement = message.media_sections_requirement
            self.spawn(self._offer_sections(int(requirement.num_videos), int(requirement.num_audios)))
        elif kind == "track_published":
            future = self._pending_publishes.get(message.track_published.cid)
            if future is not None and not future.done():
                future.set_result(message.track_published.track)
        elif kind == "request_response":
            waiting = self._pending_requests.get(message.request_response.request_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(message.request_response)
            else:
                self._refused(message.request_response)
        else:
            self._listener.on_signal_message(message)

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

    def _fail_waiting(self, detail: str) -> None:
        # A publish waiting for an answer that will not come ends now, not at its timeout.
        waiting: list[asyncio.Future[Any]] = [*self._pending_publishes.values(), *self._pending_requests.values()]
        if self._answer is not None:
            waiting.append(self._answer)
        for future in waiting:
            if not future.done():
                future.set_exception(EngineError(detail))
                # nobody may be waiting any more: do not log it as never retrieved
                future.add_done_callback(_retrieve)

    # -- ICE candidates ----------------------------------------------------------

    def _target_pc(self, target: int) -> tuple[int, PeerConnection | None]:
        if self.single_pc or target != SUBSCRIBER:
            return PUBLISHER, self.publisher
        return SUBSCRIBER, self.subscriber

    async def _add_candidate(self, trickle: signal_pb.TrickleRequest) -> None:
        target, pc = self._target_pc(int(trickle.target))
        try:
            candidate = IceCandidateInit.from_json(trickle.candidateInit)
        except ValueError as exc:
            logger.warning("ignoring malformed ICE candidate from the server: %s", exc)
            return
        if pc is None or pc.remote_description is None:
            pending = self._pending_candidates[target]
            if len(pending) < MAX_PENDING_CANDIDATES:
                pending.append(candidate)
            else:
                logger.warning("dropping an ICE candidate: %d already wait for a remote description", len(pending))
            return
        await self._add_to(pc, candidate)

    async def _flush_candidates(self, target: int, pc: PeerConnection) -> None:
        pending, self._pending_candidates[target] = self._pending_candidates[target], []
        for candidate in pending:
            await self._add_to(pc, candidate)

    @staticmethod
    async def _add_to(pc: PeerConnection, candidate: IceCandidateInit) -> None:
        try:
            await pc.add_ice_candidate(candidate)
        except ValueError as exc:
            logger.warning("ignoring ICE candidate the transport refused: %s", exc)

    # -- receiving ---------------------------------------------------------------

    async def _answer_subscriber(self, offer: signal_pb.SessionDescription) -> None:
        signal = self.signal
        if signal is None or self._closed:
            return
        if self.single_pc:
            logger.warning("ignoring a server offer in single-PeerConnection mode")
            return
        async with self._subscriber_lock:
            if self.subscriber is None:
                self.subscriber = self._new_pc(SUBSCRIBER)
            pc = self.subscriber
            try:
                await pc.set_remote_description(offer.sdp, "offer")
            except ValueError as exc:
                logger.warning("the server's subscriber offer was refused: %s", exc)
                return
            await self._flush_candidates(SUBSCRIBER, pc)
            answer = await pc.create_answer()
            await signal.send_answer(answer, offer.id)
            await self._report_incoming(pc, dict(offer.mid_to_track_id))

    async def _report_incoming(self, pc: PeerConnection, mid_to_track: dict[str, str]) -> None:
        tracks: list[IncomingTrack] = []
        for transceiver in pc.transceivers:
            mid = transceiver.mid
            if mid is None or transceiver.stopped or transceiver.current_direction in ("inactive", "sendonly"):
                continue
            participant_sid, track_sid = parse_msid(transceiver.remote_stream_id, transceiver.remote_track_id)
            track_sid = mid_to_track.get(mid, track_sid)
            if track_sid:
                tracks.append(IncomingTrack(mid, transceiver.kind, participant_sid, track_sid, transceiver))
        await self._listener.on_incoming_tracks(tracks)

    @staticmethod
    def _add_receive_slots(pc: PeerConnection, videos: int, audios: int) -> None:
        for _ in range(min(videos, MAX_SECTIONS_PER_REQUEST)):
            pc.add_transceiver("video", "recvonly")
        for _ in range(min(audios, MAX_SECTIONS_PER_REQUEST)):
            pc.add_transceiver("audio", "recvonly")

    async def _offer_sections(self, videos: int, audios: int) -> None:
        """Single-PC mode: the server wants more receive slots (or just a new offer)."""
        pc = self.publisher
        if not self.single_pc or pc is None:
            logger.warning("ignoring MediaSectionsRequirement outside single-PeerConnection mode")
            return
        self._add_receive_slots(pc, videos, audios)
        # Normally answered within a round trip; the join timeout is generous.
        await self.negotiate(timeout=20.0, wait_connected=False)

    # -- publishing --------------------------------------------------------------

    async def send(self, request: signal_pb.SignalRequest) -> None:
        """Send one request; raises EngineError when not connected."""
        if self.signal is None or self._closed or not await self.signal.send(request):
            raise EngineError("the room is not connected")

    def next_request_id(self) -> int:
        """A request id for a request answered by a RequestResponse (never 0, which means "no answer wanted")."""
        return (next(self._request_ids) - 1) % 0xFFFFFFFF + 1  # uint32 on the wire

    async def request_response(
        self, request: signal_pb.SignalRequest, request_id: int, timeout: float
    ) -> signal_pb.RequestResponse:
        """Send ``request`` (carrying ``request_id``) and return the server's RequestResponse to it.

        Raises EngineError when not connected, when :data:`MAX_PENDING_REQUESTS` already
        wait, or when no answer comes within ``timeout``; a refusal is returned, not raised."""
        if len(self._pending_requests) >= MAX_PENDING_REQUESTS:
            raise EngineError(f"at most {MAX_PENDING_REQUESTS} requests may wait for the server at once")
        future: asyncio.Future[signal_pb.RequestResponse] = self._loop.create_future()
        self._pending_requests[request_id] = future
        try:
            await self.send(request)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise EngineError(f"the server did not answer request {request_id} within {timeout} s") from None
        finally:
            self._pending_requests.pop(request_id, None)

    async def send_data(self, packet: models.DataPacket, *, reliable: bool, timeout: float) -> None:
        """Send a DataPacket on the reliable or lossy channel (see :meth:`DataChannels.send`).

        Over legacy ``/rtc`` the publisher PeerConnection (which carries the channels)
        is created and negotiated on first use. Raises ValueError for an oversized
        packet, EngineError when the channel cannot be used."""
        if not self.connected:
            raise EngineError("the room is not connected")
        if not self.data.has_own:
            async with self._data_lock:
                if self.publisher is None:
                    self.publisher = self._new_pc(PUBLISHER)
                if not self.data.has_own:
                    self.data.open_own(self.publisher)
                    await self.negotiate(timeout)
        try:
            await self.data.send(packet, reliable=reliable, timeout=timeout)
        except ConnectionError as exc:
            raise EngineError(f"cannot send data: {exc}") from None

    async def request_track(self, request: signal_pb.SignalRequest, timeout: float) -> models.TrackInfo:
        """Send an AddTrackRequest (see :func:`add_track_request`) and wait for the server's TrackInfo.

        Raises EngineError when refused, disconnected or not answered within ``timeout``."""
        cid = request.add_track.cid
        future: asyncio.Future[models.TrackInfo] = self._loop.create_future()
        self._pending_publishes[cid] = future
        try:
            await self.send(request)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            name = request.add_track.name
            raise EngineError(f"the server did not accept track {name!r} within {timeout} s") from None
        finally:
            self._pending_publishes.pop(cid, None)

    def add_video_sender(self, cid: str, codec: str, layers: list[VideoLayerPlan], simulcast: bool) -> Transceiver:
        """A sendonly video m-line for the published track ``cid`` (negotiate afterwards)."""
        if self.publisher is None:
            self.publisher = self._new_pc(PUBLISHER)
            self.data.open_own(self.publisher)
        codec = normalize_codec(codec)
        codecs = [c for c in DEFAULT_CODECS if c.kind == "video" and normalize_codec(c.mime_type) == codec]
        encodings = None
        if simulcast:
            encodings = [SendEncoding(rid=plan.rid, ssrc=random.randint(1, 0xFFFFFFFE)) for plan in layers]
        return self.publisher.add_transceiver(
            "video", "sendonly", codecs=codecs, send_encodings=encodings, stream_id=cid, track_id=cid
        )

    def add_audio_sender(self, cid: str) -> Transceiver:
        """A sendonly Opus m-line for the published audio track ``cid`` (negotiate afterwards)."""
        if self.publisher is None:
            self.publisher = self._new_pc(PUBLISHER)
        codecs = [c for c in DEFAULT_CODECS if c.kind == "audio" and c.name.lower() == "opus"]
        return self.publisher.add_transceiver("audio", "sendonly", codecs=codecs, stream_id=cid, track_id=cid)

    async def negotiate(self, timeout: float, *, wait_connected: bool = True) -> None:
        """Offer on the publisher PeerConnection and apply the server's answer (one negotiation at a time).

        Raises EngineError when disconnected, not answered within ``timeout`` or
        (``wait_connected``) when the connection does not come up."""
        pc, signal = self.publisher, self.signal
        if pc is None or signal is None or self._closed:
            raise EngineError("the room is not connected")
        async with self._offer_lock:
            offer = await pc.create_offer()
            offer_id = next(self._offer_ids)
            answer = self._answer = self._loop.create_future()
            if not await signal.send_offer(offer, offer_id):
                raise EngineError("the room is not connected")
            await self._apply_answer(pc, answer, offer_id, timeout)
        if wait_connected:
            try:
                await pc.wait_connected(timeout)
            except (TimeoutError, ConnectionError) as exc:
                raise EngineError(f"the publisher connection did not come up: {exc}") from None

    async def _apply_answer(
        self, pc: PeerConnection, answer: asyncio.Future[signal_pb.SessionDescription], offer_id: int, timeout: float
    ) -> None:
        try:
            description = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise EngineError(f"the server did not answer offer {offer_id} within {timeout} s") from None
        try:
            await pc.set_remote_description(description.sdp, "answer")
        except ValueError as exc:
            raise EngineError(f"the server's answer was refused: {exc}") from None
        await self._flush_candidates(PUBLISHER, pc)
        if self.single_pc:
            await self._report_incoming(pc, dict(description.mid_to_track_id))

    # -- leaving -----------------------------------------------------------------

    async def close(self, *, leave: bool) -> None:
        """Close the signal connection (telling the server when ``leave``) and every PeerConnection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._fail_waiting("the room disconnected")
        if self.signal is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.signal.close(leave=leave), _CLOSE_TIMEOUT)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        if self._reader is not None and self._reader is not current:
            tasks.append(self._reader)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pc.close(), _CLOSE_TIMEOUT)
