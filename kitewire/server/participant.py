"""One participant's session on the server: its signal connection, its two
PeerConnections (publisher: client offers; subscriber: server offers), the
tracks it publishes and the downtracks it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.signal.connection import ServerSignalConnection, SignalProtocolError
from kitewire.signal.join import PROTOCOL_VERSION, JoinParams
from kitewire.signal.token import AccessClaims
from kitewire.transport import (
    Codec,
    DataChannel,
    IceCandidateInit,
    PeerConnection,
    Transceiver,
)

from .downtrack import DownTrack
from .events import log_event
from .ids import PARTICIPANT_PREFIX, new_id
from .requests import dispatch
from .uptrack import PublishedTrack

if TYPE_CHECKING:
    from .room import Room
    from .server import Server

__all__ = ["Participant"]

logger = logging.getLogger("kitewire.server")

PUBLISHER = pb_rtc.SignalTarget.PUBLISHER
SUBSCRIBER = pb_rtc.SignalTarget.SUBSCRIBER
_DATA_LABELS = ("_reliable", "_lossy")
_FAILURE_GRACE_SECONDS = 2.0


class Participant:
    """A joined client. Created by the server after the token checked out."""

    def __init__(
        self,
        server: Server,
        room: Room,
        claims: AccessClaims,
        params: JoinParams,
        connection: ServerSignalConnection,
    ) -> None:
        self.server = server
        self.room = room
        self.connection = connection
        self.sid = new_id(PARTICIPANT_PREFIX)
        self.identity = claims.identity
        self.name = claims.name
        self.metadata = claims.metadata
        self.attributes = dict(claims.attributes)
        self.grant = claims.video
        self.kind = claims.kind
        self.join_request = params.join_request
        self.auto_subscribe = params.auto_subscribe
        self.client_info = params.join_request.client_info
        self.joined_at = time.time()
        self.state: int = pb_models.ParticipantInfo.JOINING
        self.version = 0
        self.published: dict[str, PublishedTrack] = {}
        self.pending_tracks: dict[str, pb_models.TrackInfo] = {}  # cid -> info, waiting for media
        self.subscriptions: dict[str, DownTrack] = {}
        self.publisher_pc: PeerConnection | None = None
        self.subscriber_pc: PeerConnection | None = None
        self._subscriber_channels: dict[str, DataChannel] = {}
        self._publisher_channels: list[DataChannel] = []
        self._awaiting_answer = False
        self._renegotiate = False
        self._negotiation_task: asyncio.Task[None] | None = None
        self._offer_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._early_publisher_candidates: list[IceCandidateInit] = []
        # Trickled candidates taken so far (bounded by limits.MAX_CANDIDATES_PER_SESSION).
        self.remote_candidates = 0
        self._primary_connected = asyncio.Event()
        # /rtc/v1 clients (livekit >= 1.2) use ONE PeerConnection for both
        # directions: they always offer, and the server sends media on the
        # recvonly m-lines they add (asking for more with MediaSectionsRequirement).
        self.single_pc = not params.legacy
        self._unbound_downtracks: list[DownTrack] = []
        self._spent_sections: set[int] = set()
        self._offered_directions: dict[str, str] = {}
        self._sections_requested = False
        self._sections_scheduled = False
        self._needs_client_offer = False
        self.closed = False
        self.close_reason = ""

    # ----- state -----

    @property
    def hidden(self) -> bool:
        """Hidden participants (recorders) are not announced to others."""
        return self.grant.hidden

    @property
    def can_publish(self) -> bool:
        """Whether the token allows publishing media."""
        return self.grant.can_publish

    @property
    def can_subscribe(self) -> bool:
        """Whether the token allows subscribing."""
        return self.grant.can_subscribe

    @property
    def subscriber_primary(self) -> bool:
        """Subscriber PC is the one the client waits for (livekit's rule: when it may subscribe)."""
        return not self.single_pc and self.can_subscribe and self.server.media_available

    def info(self) -> pb_models.ParticipantInfo:
        """This participant as others see it."""
        info = pb_models.ParticipantInfo()
        info.sid = self.sid
        info.identity = self.identity
        info.name = self.name
        info.metadata = self.metadata
        info.state = self.state  # type: ignore[assignment]
        info.joined_at = int(self.joined_at)
        info.joined_at_ms = int(self.joined_at * 1000)
        info.version = self.version
        info.is_publisher = bool(self.published)
        for key, value in self.attributes.items():
            info.attributes[key] = value
        permission = info.permission
        permission.can_subscribe = self.grant.can_subscribe
        permission.can_publish = self.grant.can_publish
        permission.can_publish_data = self.grant.can_publish_data
        permission.hidden = self.grant.hidden
        permission.can_update_metadata = self.grant.can_update_own_metadata
        for track in self.published.values():
            info.tracks.append(track.info)
        return info

    def _bump(self) -> pb_models.ParticipantInfo:
        self.version += 1
        return self.info()

    def send(self, response: pb_rtc.SignalResponse) -> bool:
        """Queue one SignalResponse for the client; never waits on its socket. False when the connection is gone."""
        if self.closed:
            return False
        return self.connection.post(response)

    def announce(self, *, to_self: bool = False) -> None:
        """Tell the room (and with ``to_self`` the client itself) this participant's new state."""
        info = self._bump()
        if to_self:
            update = pb_rtc.SignalResponse()
            update.update.participants.append(info)
            self.send(update)
        # The room leaves hidden participants out of what it tells others.
        self.room.broadcast_update([info], exclude=self)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("participant %s: background task failed", self.identity, exc_info=task.exception())

    # ----- join -----

    async def start(self) -> None:
        """Send the JoinResponse, answer an embedded publisher offer, offer the subscriber PC."""
        response = pb_rtc.SignalResponse()
        join = response.join
        join.room.CopyFrom(self.room.info())
        self.state = pb_models.ParticipantInfo.JOINED
        join.participant.CopyFrom(self._bump())
        for other in self.room.others(self):
            if not other.hidden:
                join.other_participants.append(other.info())
        from kitewire import __version__

        join.server_version = __version__
        join.server_info.edition = pb_models.ServerInfo.Standard
        join.server_info.version = __version__
        join.server_info.protocol = PROTOCOL_VERSION
        join.server_info.node_id = self.server.node_id
        join.subscriber_primary = self.subscriber_primary
        join.ping_interval = self.server.config.ping_interval
        join.ping_timeout = self.server.config.ping_timeout
        for mime in ("video/VP8", "video/H264", "audio/opus"):
            join.enabled_publish_codecs.append(pb_models.Codec(mime=mime))
        self.send(response)
        self.room.broadcast_update([self.info()], exclude=self)

        if self.server.media_available:
            if self.single_pc:
                # The join's own offer has recvonly m-lines for these; ask for more only after answering it.
                self._sections_scheduled = True
                if self.can_subscribe and self.auto_subscribe:
                    for other in self.room.others(self):
                        for track in list(other.published.values()):
                            self.subscribe(track)
            if self.join_request.HasField("publisher_offer") and self.join_request.publisher_offer.sdp:
                await self.handle_publisher_offer(self.join_request.publisher_offer)
            if self.single_pc:
                self._sections_scheduled = False
                if self._unbound_downtracks:
                    self.request_negotiation()
            if self.can_subscribe and not self.single_pc:
                self._create_subscriber_pc()
                if self.auto_subscribe:
                    for other in self.room.others(self):
                        for track in list(other.published.values()):
                            self.subscribe(track)
                self.request_negotiation()
            self._spawn(self._watch_connection())

    async def _watch_connection(self) -> None:
        """Remove a participant whose primary PeerConnection never connects."""
        try:
            await asyncio.wait_for(self._primary_connected.wait(), self.server.config.ice_connect_timeout)
        except TimeoutError:
            if not self.closed and self._primary_pc() is not None:
                await self.close("ICE did not connect in time", pb_models.CONNECTION_TIMEOUT)

    def _primary_pc(self) -> PeerConnection | None:
        return self.subscriber_pc if self.subscriber_primary else self.publisher_pc

    # ----- peer connections -----

    def _new_pc(self, target: int) -> PeerConnection:
        pc = self.server.new_peer_connection()

        def on_candidate(candidate: IceCandidateInit | None) -> None:
            if candidate is None or not candidate.candidate:
                return
            message = pb_rtc.SignalResponse()
            message.trickle.candidateInit = candidate.to_json()
            message.trickle.target = target  # type: ignore[assignment]
            self.send(message)

        def on_state(state: str) -> None:
            if state == "connected":
                if pc is self._primary_pc():
                    self._primary_connected.set()
                    if self.state != pb_models.ParticipantInfo.ACTIVE:
                        self.state = pb_models.ParticipantInfo.ACTIVE
                        self.announce()
                if pc is self.subscriber_pc or self.single_pc:
                    for down in self.subscriptions.values():
                        down.track.request_keyframe()
            elif state == "failed" and not self.closed:
                which = "publisher" if target == PUBLISHER else "subscriber"
                self._spawn(self._close_after_failure(f"{which} ICE connection failed"))

        pc.on_ice_candidate = on_candidate
        pc.on_connection_state_change = on_state
        return pc

    async def _close_after_failure(self, reason: str) -> None:
        # A leaving client often tears its PeerConnections down just before its
        # leave request arrives; give the signal channel a moment to say so.
        await asyncio.sleep(_FAILURE_GRACE_SECONDS)
        if not self.closed:
            await self.close(reason, pb_models.MEDIA_FAILURE)

    def _create_subscriber_pc(self) -> None:
        pc = self._new_pc(SUBSCRIBER)
        self.subscriber_pc = pc
        # livekit clients receive other participants' data on channels the server opens.
        self._subscriber_channels["_reliable"] = pc.create_data_channel("_reliable", ordered=True)
        self._subscriber_channels["_lossy"] = pc.create_data_channel("_lossy", ordered=False, max_retransmits=0)

    def _ensure_publisher_pc(self) -> PeerConnection:
        if self.publisher_pc is None:
            pc = self._new_pc(PUBLISHER)
            pc.on_data_channel = self._on_publisher_data_channel
            self.publisher_pc = pc
            if self.single_pc:
                # Single-PC clients take server-opened channels on this PC as their receive channels.
                self._subscriber_channels["_reliable"] = pc.create_data_channel("_reliable", ordered=True)
                self._subscriber_channels["_lossy"] = pc.create_data_channel("_lossy", ordered=False, max_retransmits=0)
        return self.publisher_pc

    async def handle_publisher_offer(self, offer: pb_rtc.SessionDescription) -> None:
        """Answer the client's offer (its publisher PC, or its only PC in single-PC mode)."""
        pc = self._ensure_publisher_pc()
        await pc.set_remote_description(offer.sdp, "offer")
        for candidate in self._early_publisher_candidates:
            with contextlib.suppress(ValueError):
                await pc.add_ice_candidate(candidate)
        self._early_publisher_candidates.clear()
        mid_to_track: dict[str, str] = {}
        if self.single_pc:
            self._offered_directions = _offered_directions(offer.sdp)
            # This offer is the one asked for: released m-lines go inactive in its answer.
            self._sections_requested = False
            self._needs_client_offer = False
            mid_to_track = self._bind_downtracks(pc)
        sdp = await pc.create_answer()
        response = pb_rtc.SignalResponse()
        response.answer.type = "answer"
        response.answer.sdp = sdp
        response.answer.id = offer.id
        for mid, track_sid in mid_to_track.items():
            response.answer.mid_to_track_id[mid] = track_sid
        self.send(response)
        await self._sync_published_tracks(pc)
        if self.single_pc and self._unbound_downtracks:
            self.request_negotiation()

    def _free_sections(self, pc: PeerConnection) -> list[Transceiver]:
        """Recvonly m-lines the client offered that carry nothing yet (single-PC mode)."""
        used = {id(d.transceiver) for d in self.subscriptions.values() if d.transceiver is not None}
        used.update(id(t.transceiver) for t in self.published.values())
        return [
            t
            for t in pc.transceivers
            if t.mid is not None
            and not t.stopped
            and id(t) not in used
            and self._offered_directions.get(t.mid) == "recvonly"
            # An m-line that carried a track once is never reused: the client's
            # receiver keeps its track object per m-line, so livekit's SDK would
            # not report the new track (seen with livekit 1.2.1).
            and id(t) not in self._spent_sections
        ]

    def _bind_downtracks(self, pc: PeerConnection) -> dict[str, str]:
        """Put waiting downtracks on free recvonly m-lines before answering; returns mid -> track sid."""
        free = self._free_sections(pc)
        for down in list(self._unbound_downtracks):
            section = next((t for t in free if t.kind == down.track.kind), None)
            if section is None:
                continue
            free.remove(section)
            section.direction = "sendonly"
            self._spent_sections.add(id(section))
            section.stream_id = f"{down.track.publisher.sid}|{down.track.sid}"
            section.track_id = down.track.sid
            down.bind(section)
            self._unbound_downtracks.remove(down)
        mapping: dict[str, str] = {}
        for down in self.subscriptions.values():
            if down.transceiver is not None and down.transceiver.mid is not None:
                mapping[down.transceiver.mid] = down.track.sid
        return mapping

    def _request_media_sections(self) -> None:
        """Ask a single-PC client for more recvonly m-lines (and so for a new offer)."""
        self._sections_scheduled = False
        if self.closed or self._sections_requested:
            return
        wanted = {"audio": 0, "video": 0}
        for down in self._unbound_downtracks:
            wanted[down.track.kind] += 1
        if not any(wanted.values()) and not self._needs_client_offer:
            return
        if self.publisher_pc is not None:
            for section in self._free_sections(self.publisher_pc):
                if wanted.get(section.kind, 0) > 0:
                    wanted[section.kind] -= 1
        self._needs_client_offer = False
        self._sections_requested = True
        response = pb_rtc.SignalResponse()
        response.media_sections_requirement.num_audios = wanted["audio"]
        response.media_sections_requirement.num_videos = wanted["video"]
        self.send(response)

    async def handle_subscriber_answer(self, answer: pb_rtc.SessionDescription) -> None:
        """Apply the client's answer to the server's subscriber offer."""
        pc = self.subscriber_pc
        if pc is None or not self._awaiting_answer:
            logger.debug("participant %s: unexpected subscriber answer ignored", self.identity)
            return
        await pc.set_remote_description(answer.sdp, "answer")
        self._awaiting_answer = False
        if self._renegotiate:
            self.request_negotiation()

    def request_negotiation(self) -> None:
        """Offer the subscriber PC again once the current offer is answered (changes coalesce).

        In single-PC mode the client must offer instead: ask it to.
        """
        if self.single_pc:
            if not self._sections_scheduled and not self.closed:
                self._sections_scheduled = True
                asyncio.get_running_loop().call_soon(self._request_media_sections)
            return
        if self.subscriber_pc is None or self.closed:
            return
        if self._awaiting_answer or (self._negotiation_task is not None and not self._negotiation_task.done()):
            self._renegotiate = True
            return
        self._negotiation_task = asyncio.get_running_loop().create_task(self._negotiate())

    async def _negotiate(self) -> None:
        # Let every change made in the current event-loop turn land in one offer.
        await asyncio.sleep(0)
        pc = self.subscriber_pc
        if pc is None or self.closed:
            return
        self._renegotiate = False
        try:
            sdp = await pc.create_offer()
        except Exception:
            logger.exception("participant %s: subscriber offer failed", self.identity)
            return
        self._offer_id += 1
        self._awaiting_answer = True
        response = pb_rtc.SignalResponse()
        response.offer.type = "offer"
        response.offer.sdp = sdp
        response.offer.id = self._offer_id
        for down in self.subscriptions.values():
            if down.transceiver is not None and down.transceiver.mid is not None:
                response.offer.mid_to_track_id[down.transceiver.mid] = down.track.sid
        self.send(response)

    # ----- publishing -----

    @staticmethod
    def _remote_sends(transceiver: Transceiver) -> bool:
        return not transceiver.stopped and transceiver.current_direction in ("recvonly", "sendrecv")

    async def _sync_published_tracks(self, pc: PeerConnection) -> None:
        """After a publisher negotiation: bind new sending m-lines, unpublish stopped ones."""
        bound = {id(track.transceiver) for track in self.published.values()}
        newly: list[PublishedTrack] = []
        for transceiver in pc.transceivers:
            if id(transceiver) in bound or not self._remote_sends(transceiver):
                continue
            info = self._match_pending(transceiver)
            if info is None:
                if transceiver.remote_track_id:
                    logger.debug("participant %s: m-line %s without add_track", self.identity, transceiver.mid)
                continue
            if not self.can_publish:
                continue
            track = PublishedTrack(self, info, transceiver)
            self.published[info.sid] = track
            newly.append(track)
            log_event(
                "publish",
                room=self.room.name,
                identity=self.identity,
                track=info.sid,
                kind=track.kind,
                mime=info.mime_type,
                simulcast=track.simulcast,
                mid=info.mid,
            )
        gone = [
            t for t in self.published.values() if t.transceiver is not None and not self._remote_sends(t.transceiver)
        ]
        for track in gone:
            await self.unpublish(track.sid, broadcast=False)
        if newly or gone:
            self.announce()
            for track in newly:
                for other in self.room.others(self):
                    if other.auto_subscribe and other.can_subscribe and not other.closed:
                        other.subscribe(track)

    def _match_pending(self, transceiver: Transceiver) -> pb_models.TrackInfo | None:
        track_id = transceiver.remote_track_id
        if track_id and track_id in self.pending_tracks:
            return self.pending_tracks.pop(track_id)
        wanted = pb_models.AUDIO if transceiver.kind == "audio" else pb_models.VIDEO
        for cid, info in self.pending_tracks.items():
            if info.type == wanted:
                return self.pending_tracks.pop(cid)
        return None

    async def unpublish(self, track_sid: str, *, broadcast: bool = True) -> None:
        """Stop forwarding a published track and remove it from every subscriber."""
        track = self.published.pop(track_sid, None)
        if track is None:
            return
        track.close()
        for down in list(track.downtracks.values()):
            down.subscriber.unsubscribe(track_sid, track=track)
        self.room.remember_track_sid(self.identity, track_sid)
        log_event("unpublish", room=self.room.name, identity=self.identity, track=track_sid)
        if broadcast:
            self.announce()

    # ----- subscribing -----

    def _subscriber_ready(self, transceiver: Transceiver) -> bool:
        pc = self.publisher_pc if self.single_pc else self.subscriber_pc
        return (
            pc is not None
            and pc.connection_state == "connected"
            and transceiver.current_direction in ("sendonly", "sendrecv")
        )

    def subscribe(self, track: PublishedTrack) -> None:
        """Add a downtrack for ``track`` and renegotiate the subscriber PC."""
        if self.closed or track.sid in self.subscriptions or track.publisher is self:
            return
        if track.publisher.hidden:
            # Nobody may learn of a hidden participant, so nobody receives its tracks.
            return
        if self.single_pc:
            down = DownTrack(track, self, None, is_ready=self._subscriber_ready)
            self._unbound_downtracks.append(down)
        else:
            pc = self.subscriber_pc
            if pc is None:
                return
            codec = track.codec
            codecs = None
            if codec is not None:
                codecs = [
                    Codec(codec.mime_type, codec.clock_rate, codec.channels, codec.fmtp, None, codec.rtcp_feedback)
                ]
            kind: Literal["audio", "video"] = "audio" if track.kind == "audio" else "video"
            transceiver = pc.add_transceiver(
                kind,
                "sendonly",
                codecs=codecs,
                stream_id=f"{track.publisher.sid}|{track.sid}",
                track_id=track.sid,
            )
            down = DownTrack(track, self, transceiver, is_ready=self._subscriber_ready)
        track.downtracks[self.sid] = down
        self.subscriptions[track.sid] = down
        log_event(
            "subscribe",
            room=self.room.name,
            identity=self.identity,
            track=track.sid,
            publisher=track.publisher.identity,
        )
        if len(track.downtracks) == 1:
            notice = pb_rtc.SignalResponse()
            notice.track_subscribed.track_sid = track.sid
            track.publisher.send(notice)
        self.request_negotiation()

    def unsubscribe(self, track_sid: str, *, track: PublishedTrack | None = None) -> None:
        """Remove the downtrack for ``track_sid`` (only when it forwards ``track``, if given) and renegotiate."""
        down = self.subscriptions.get(track_sid)
        if down is None or (track is not None and down.track is not track):
            return
        del self.subscriptions[track_sid]
        down.track.downtracks.pop(self.sid, None)
        down.close()
        if down in self._unbound_downtracks:
            self._unbound_downtracks.remove(down)
        elif self.single_pc and down.transceiver is not None:
            # Keep the m-line for reuse; the next answer makes it inactive.
            down.transceiver.direction = "recvonly"
            self._needs_client_offer = True
        elif down.transceiver is not None:
            with contextlib.suppress(Exception):
                down.transceiver.stop()
        log_event("unsubscribe", room=self.room.name, identity=self.identity, track=track_sid)
        self.request_negotiation()

    def find_track(self, track_sid: str) -> PublishedTrack | None:
        """Another participant's published track ``track_sid``, if any."""
        for other in self.room.others(self):
            track = other.published.get(track_sid)
            if track is not None:
                return track
        return None

    # ----- data -----

    def _on_publisher_data_channel(self, channel: DataChannel) -> None:
        self._publisher_channels.append(channel)
        label = channel.label

        def on_message(data: bytes | str) -> None:
            self._on_data(label, data.encode("utf-8") if isinstance(data, str) else data)

        channel.on_message = on_message

    def _on_data(self, label: str, data: bytes) -> None:
        if label not in _DATA_LABELS:
            return
        packet = pb_models.DataPacket()
        try:
            packet.ParseFromString(data)
        except Exception:
            logger.info("participant %s: undecodable data packet (%d bytes) dropped", self.identity, len(data))
            return
        if not self.grant.can_publish_data:
            log_event(
                "refused",
                level=logging.WARNING,
                room=self.room.name,
                identity=self.identity,
                request="data",
                reason="token does not allow publishing data (canPublishData=false)",
            )
            return
        kind = packet.WhichOneof("value")
        if kind in ("speaker", "transcription", "metrics"):
            return
        destinations = set(packet.destination_identities)
        packet.participant_identity = self.identity
        packet.participant_sid = self.sid
        if kind == "user":
            packet.user.participant_identity = self.identity
            packet.user.participant_sid = self.sid
            destinations.update(packet.user.destination_identities)
        payload = packet.SerializeToString()
        for other in self.room.others(self):
            if destinations and other.identity not in destinations:
                continue
            other.send_data(label, payload)

    def send_data(self, label: str, payload: bytes) -> None:
        """Deliver a data packet on the subscriber PC's channel ``label``."""
        channel = self._subscriber_channels.get(label)
        if channel is None:
            return
        try:
            if channel.ready_state == "open":
                channel.send(payload)
        except (ConnectionError, NotImplementedError):
            pass

    # ----- the signal loop -----

    async def run(self) -> None:
        """Handle signal requests until the client leaves or the connection drops."""
        reason = "signal connection closed"
        code = pb_models.SIGNAL_CLOSE
        # Whether the client may still be listening and should hear why it goes.
        notify = False
        try:
            while not self.closed:
                try:
                    request = await self.connection.receive(timeout=float(self.server.config.ping_timeout))
                except TimeoutError:
                    reason, code, notify = "no ping within ping_timeout", pb_models.SIGNAL_CLOSE, True
                    break
                except SignalProtocolError as exc:
                    log_event(
                        "refused",
                        level=logging.WARNING,
                        room=self.room.name,
                        identity=self.identity,
                        request="signal",
                        reason=str(exc),
                    )
                    reason, code, notify = f"bad signal message: {exc}", pb_models.STATE_MISMATCH, True
                    break
                if request is None:
                    if self.connection.failure:
                        # This end gave up on a client that stopped reading; it would not hear why.
                        reason, code = self.connection.failure, pb_models.SIGNAL_CLOSE
                    break
                try:
                    done = await dispatch(self, request)
                except ValueError as exc:
                    log_event(
                        "refused",
                        level=logging.WARNING,
                        room=self.room.name,
                        identity=self.identity,
                        request=request.WhichOneof("message") or "unknown",
                        reason=str(exc),
                    )
                    reason, code, notify = f"bad request: {exc}", pb_models.STATE_MISMATCH, True
                    break
                except NotImplementedError as exc:
                    logger.warning(
                        "participant %s: %s not available: %s", self.identity, request.WhichOneof("message"), exc
                    )
                    continue
                except Exception:
                    # A bug of ours: the session's state is unknown, so end it cleanly.
                    kind = request.WhichOneof("message") or "unknown"
                    logger.exception("participant %s: handling %s failed", self.identity, kind)
                    reason, code, notify = f"internal error handling {kind}", pb_models.UNKNOWN_REASON, True
                    break
                if done:
                    reason, code = "client left", pb_models.CLIENT_INITIATED
                    break
        except asyncio.CancelledError:
            reason, code, notify = "server stopping", pb_models.SERVER_SHUTDOWN, True
            raise
        finally:
            await self.close(reason, code, notify_client=notify)

    async def add_remote_candidate(self, target: int, candidate: IceCandidateInit) -> None:
        """Add a trickled candidate to the PeerConnection ``target`` names (held until it has an offer)."""
        if target == SUBSCRIBER and not self.single_pc:
            if self.subscriber_pc is not None:
                await self.subscriber_pc.add_ice_candidate(candidate)
        elif self.publisher_pc is None or self.publisher_pc.remote_description is None:
            if len(self._early_publisher_candidates) < 64:
                self._early_publisher_candidates.append(candidate)
        else:
            await self.publisher_pc.add_ice_candidate(candidate)

    # ----- leaving -----

    async def close(
        self, reason: str, disconnect_reason: int = pb_models.UNKNOWN_REASON, *, notify_client: bool = True
    ) -> None:
        """Remove this participant: tell the client (optionally) and everyone else."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if notify_client:
            leave = pb_rtc.SignalResponse()
            leave.leave.reason = disconnect_reason  # type: ignore[assignment]
            leave.leave.action = pb_rtc.LeaveRequest.DISCONNECT
            leave.leave.can_reconnect = False
            await self.connection.send(leave)
        if self.room.participants.get(self.identity) is self:
            del self.room.participants[self.identity]
        for track_sid in list(self.published):
            await self.unpublish(track_sid, broadcast=False)
        for track_sid in list(self.subscriptions):
            self.unsubscribe(track_sid)
        self.state = pb_models.ParticipantInfo.DISCONNECTED
        info = self._bump()
        info.disconnect_reason = disconnect_reason  # type: ignore[assignment]
        self.room.broadcast_update([info])
        log_event(
            "leave",
            room=self.room.name,
            identity=self.identity,
            sid=self.sid,
            reason=reason,
            code=pb_models.DisconnectReason.Name(disconnect_reason),
        )
        if self._negotiation_task is not None:
            self._negotiation_task.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        await self.connection.close(reason)
        self.server.rooms.participant_left(self.room)

    def maintain(self, now: float) -> None:
        """Periodic per-participant work (called by the server's ticker)."""
        for down in list(self.subscriptions.values()):
            down.maintain(now)


def _offered_directions(sdp: str) -> dict[str, str]:
    """mid -> direction of each m-line in an SDP ("rejected" for port 0)."""
    result: dict[str, str] = {}
    mid: str | None = None
    direction = "sendrecv"
    rejected = False
    in_media = False

    def flush() -> None:
        if in_media and mid is not None:
            result[mid] = "rejected" if rejected else direction

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            flush()
            in_media = True
            mid = None
            direction = "sendrecv"
            parts = line.split()
            rejected = len(parts) > 1 and parts[1] == "0"
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            direction = line[2:]
    flush()
    return result
