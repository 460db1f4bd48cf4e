"""One participant on the server: identity, grants, what it publishes and
what it receives. Its PeerConnections live in ``transports``, its data
channels in ``data_relay``, its signal loop in ``signal_loop``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine
from typing import Any

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.signal.connection import ServerSignalConnection
from kitewire.signal.join import JoinParams
from kitewire.signal.token import AccessClaims
from kitewire.transport import IceCandidateInit, PeerConnection, Transceiver

from .context import ParticipantContext
from .data_relay import DataRelay
from .downtrack import DownTrack, msid_stream_id
from .events import log_event
from .ids import PARTICIPANT_PREFIX, new_id
from .media_settings import PUBLISH_CODEC_MIMES
from .room import Room
from .subscription_permissions import SubscriptionPermissions
from .transports import Transports
from .uptrack import PublishedTrack
from .version import LIVEKIT_COMPATIBLE_VERSION, fill_server_info

__all__ = ["DEPENDENT_KINDS", "PARTICIPANT_KINDS", "Participant"]

logger = logging.getLogger("kitewire.server")

_FAILURE_GRACE_SECONDS = 2.0

#: The token's ``kind`` claim -> ParticipantInfo.Kind ("" is a standard participant).
PARTICIPANT_KINDS: dict[str, int] = {
    "": pb_models.ParticipantInfo.STANDARD,
    "standard": pb_models.ParticipantInfo.STANDARD,
    "ingress": pb_models.ParticipantInfo.INGRESS,
    "egress": pb_models.ParticipantInfo.EGRESS,
    "sip": pb_models.ParticipantInfo.SIP,
    "agent": pb_models.ParticipantInfo.AGENT,
    "connector": pb_models.ParticipantInfo.CONNECTOR,
    "bridge": pb_models.ParticipantInfo.BRIDGE,
}
#: Kinds that do not count towards a room's max_participants (livekit's rule).
DEPENDENT_KINDS = frozenset({pb_models.ParticipantInfo.AGENT, pb_models.ParticipantInfo.EGRESS})
# Tracks a subscriber remembers being refused, to subscribe when the publisher allows them.
_MAX_DENIED_TRACKS = 1024


class Participant:
    """A joined client. Created by the server after the token checked out."""

    def __init__(
        self,
        context: ParticipantContext,
        room: Room[Participant],
        claims: AccessClaims,
        params: JoinParams,
        connection: ServerSignalConnection,
    ) -> None:
        self.context = context
        self.room = room
        self.connection = connection
        self.sid = new_id(PARTICIPANT_PREFIX)
        self.identity = claims.identity
        self.name = claims.name
        self.metadata = claims.metadata
        self.attributes = dict(claims.attributes)
        self.grant = claims.video
        #: ParticipantInfo.Kind from the token's ``kind`` claim (the server refuses unknown kinds before this).
        self.kind = PARTICIPANT_KINDS.get(claims.kind.lower(), pb_models.ParticipantInfo.STANDARD)
        #: Who may subscribe to this participant's tracks (set_track_subscription_permissions).
        self.subscription_permissions = SubscriptionPermissions()
        # Track sids this participant was refused by their publishers' permissions.
        self.denied_tracks: set[str] = set()
        self.join_request = params.join_request
        self.auto_subscribe = params.auto_subscribe
        self.client_info = params.join_request.client_info
        self.joined_at = time.time()
        self.state: int = pb_models.ParticipantInfo.JOINING
        #: Whether the participant ever became ACTIVE (its leaving is then participant_left, else aborted).
        self.was_active = False
        self.version = 0
        self.published: dict[str, PublishedTrack] = {}
        self.pending_tracks: dict[str, pb_models.TrackInfo] = {}  # cid -> info, waiting for media
        self.subscriptions: dict[str, DownTrack] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.close_reason = ""
        # Trickled candidates taken so far (bounded by limits.MAX_CANDIDATES_PER_SESSION).
        self.remote_candidates = 0
        # Trickled candidates that could not be used (only the first is logged).
        self.ignored_candidates = 0
        self.relay = DataRelay(
            identity=self.identity,
            sid=self.sid,
            room_name=room.name,
            may_publish=lambda: self.grant.can_publish_data,
            recipients=lambda: [(other.identity, other.relay) for other in self.room.others(self)],
            is_agent=lambda: self.kind == pb_models.ParticipantInfo.AGENT,
        )
        # /rtc/v1 clients (livekit >= 1.2) use ONE PeerConnection for both directions.
        single_pc = not params.legacy
        self.transports = Transports(
            self,
            context,
            self.relay,
            single_pc=single_pc,
            # livekit's rule: the subscriber PC is the one the client waits for when it may subscribe.
            subscriber_primary=not single_pc and self.can_subscribe and context.media_available,
        )

    # ----- state -----

    @property
    def hidden(self) -> bool:
        """Hidden participants (recorders) are not announced to others."""
        return self.grant.hidden

    @property
    def dependent(self) -> bool:
        """Agents and egress do not count towards a room's max_participants (livekit's rule)."""
        return self.kind in DEPENDENT_KINDS

    @property
    def can_publish(self) -> bool:
        """Whether the token allows publishing media."""
        return self.grant.can_publish

    @property
    def can_subscribe(self) -> bool:
        """Whether the token allows subscribing."""
        return self.grant.can_subscribe

    @property
    def single_pc(self) -> bool:
        """Whether the client uses one PeerConnection for both directions (``/rtc/v1``)."""
        return self.transports.single_pc

    @property
    def publisher_pc(self) -> PeerConnection | None:
        """The connection the client offers (in single-PC mode its only one)."""
        return self.transports.publisher_pc

    @property
    def subscriber_pc(self) -> PeerConnection | None:
        """Two-PC mode: the connection the server offers."""
        return self.transports.subscriber_pc

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
        info.kind = self.kind  # type: ignore[assignment]
        for key, value in self.attributes.items():
            info.attributes[key] = value
        permission = info.permission
        permission.can_subscribe = self.grant.can_subscribe
        permission.can_publish = self.grant.can_publish
        permission.can_publish_data = self.grant.can_publish_data
        permission.hidden = self.grant.hidden
        permission.can_update_metadata = self.grant.can_update_own_metadata
        known_sources = pb_models.TrackSource.keys()
        permission.can_publish_sources.extend(
            pb_models.TrackSource.Value(name.upper())  # type: ignore[misc]
            for name in self.grant.can_publish_sources
            if name.upper() in known_sources
        )
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

    def update_state(self, *, name: str = "", metadata: str = "", attributes: dict[str, str] | None = None) -> None:
        """Apply a name, metadata and attribute change (empty leaves one as it is; an empty attribute value
        deletes the key) and tell the participant and the room. Bounds are the caller's (``limits``)."""
        if name:
            self.name = name
        if metadata:
            self.metadata = metadata
        for key, value in (attributes or {}).items():
            if value:
                self.attributes[key] = value
            else:
                self.attributes.pop(key, None)
        self.announce(to_self=True)

    async def update_permission(self, permission: pb_models.ParticipantPermission) -> None:
        """Replace what the participant may do (the server API): losing canPublish unpublishes its tracks,
        losing canSubscribe ends its subscriptions, regaining it subscribes an auto-subscribing participant
        to the room again; the participant and the room hear the new state. ``hidden`` stays as the token
        set it: others were never told of a hidden participant, so it cannot appear or vanish midway."""
        could_subscribe = self.can_subscribe
        self.grant = dataclasses.replace(
            self.grant,
            can_subscribe=permission.can_subscribe,
            can_publish=permission.can_publish,
            can_publish_data=permission.can_publish_data,
            can_publish_sources=tuple(
                pb_models.TrackSource.Name(source).lower()
                for source in permission.can_publish_sources
                if source in pb_models.TrackSource.values()
            ),
            can_update_own_metadata=permission.can_update_metadata,
        )
        if not self.can_publish:
            for track_sid in list(self.published):
                await self.unpublish(track_sid, broadcast=False)
            self.pending_tracks.clear()
        if not self.can_subscribe:
            for track_sid in list(self.subscriptions):
                self.unsubscribe(track_sid)
        elif not could_subscribe and self.context.media_available:
            self._subscribe_to_room()
        self.announce(to_self=True)

    def set_track_muted(self, track_sid: str, muted: bool, *, tell_client: bool) -> pb_models.TrackInfo | None:
        """Mute or unmute a track of this participant (published or waiting for media); None when it has none.

        With ``tell_client`` (the server API) the client hears a mute request too, so
        the SDK mutes its local track; everyone else hears the new track state.
        """
        track = self.published.get(track_sid)
        info = track.info if track is not None else None
        if info is None:
            info = next((pending for pending in self.pending_tracks.values() if pending.sid == track_sid), None)
        if info is None:
            return None
        if tell_client:
            request = pb_rtc.SignalResponse()
            request.mute.sid = track_sid
            request.mute.muted = muted
            self.send(request)
        if info.muted != muted:
            info.muted = muted
            self._log("mute" if muted else "unmute", track=track_sid)
            if track is not None:
                self.announce()
        return info

    def _log(self, event: str, **fields: Any) -> None:
        log_event(event, room=self.room.name, identity=self.identity, **fields)

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
        join.server_version = LIVEKIT_COMPATIBLE_VERSION
        fill_server_info(join.server_info, self.context.node_id)
        join.subscriber_primary = self.transports.subscriber_primary
        join.ping_interval = self.context.settings.ping_interval
        join.ping_timeout = self.context.settings.ping_timeout
        for mime in PUBLISH_CODEC_MIMES:
            join.enabled_publish_codecs.append(pb_models.Codec(mime=mime))
        self.send(response)
        self.room.broadcast_update([self.info()], exclude=self)

        if self.context.media_available:
            offer = self.join_request.publisher_offer if self.join_request.HasField("publisher_offer") else None
            if self.single_pc:
                if offer is not None and offer.sdp:
                    # The join's own offer has recvonly m-lines for these: its answer is the first round.
                    self.transports.negotiation.request()
                self._subscribe_to_room()
            if offer is not None and offer.sdp:
                await self.handle_offer(offer)
            if self.can_subscribe and not self.single_pc:
                self.transports.create_subscriber_pc()
                self._subscribe_to_room()
                self.transports.request_negotiation()
            self._spawn(self._watch_connection())

    def _subscribe_to_room(self) -> None:
        if self.can_subscribe and self.auto_subscribe:
            for other in self.room.others(self):
                for track in list(other.published.values()):
                    self.subscribe(track)

    async def _watch_connection(self) -> None:
        """Remove a participant whose primary PeerConnection never connects."""
        connected = await self.transports.wait_connected(self.context.settings.ice_connect_timeout)
        if not connected and not self.closed:
            await self.close("ICE did not connect in time", pb_models.CONNECTION_TIMEOUT)

    def transport_connected(self) -> None:
        """The primary connection connected: the participant is active."""
        if self.state != pb_models.ParticipantInfo.ACTIVE:
            self.state = pb_models.ParticipantInfo.ACTIVE
            self.announce()
            if not self.was_active:
                # livekit-server's rule: a participant has joined once its connection is up.
                self.was_active = True
                self.context.webhooks.notify("participant_joined", self.room.info(), participant=self.info())

    def transport_failed(self, reason: str) -> None:
        """A connection failed: close the session unless the client says it is leaving."""
        self._spawn(self._close_after_failure(reason))

    async def _close_after_failure(self, reason: str) -> None:
        # A leaving client often tears its PeerConnections down just before its
        # leave request arrives; give the signal channel a moment to say so.
        await asyncio.sleep(_FAILURE_GRACE_SECONDS)
        if not self.closed:
            await self.close(reason, pb_models.MEDIA_FAILURE)

    async def handle_offer(self, offer: pb_rtc.SessionDescription) -> None:
        """Answer the client's offer (its publisher PC, or its only PC) and take the tracks it sends."""
        pc = await self.transports.answer_offer(offer)
        await self._sync_published_tracks(pc)
        self.transports.offer_handled()

    async def handle_answer(self, answer: pb_rtc.SessionDescription) -> None:
        """Apply the client's answer to the server's subscriber offer."""
        await self.transports.apply_answer(answer)

    async def add_remote_candidate(self, target: int, candidate: IceCandidateInit) -> None:
        """Add a trickled candidate to the PeerConnection ``target`` names."""
        await self.transports.add_remote_candidate(target, candidate)

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
            self._log(
                "publish", track=info.sid, kind=track.kind, mime=info.mime_type, simulcast=track.simulcast, mid=info.mid
            )
        gone = [
            t for t in self.published.values() if t.transceiver is not None and not self._remote_sends(t.transceiver)
        ]
        for track in gone:
            await self.unpublish(track.sid, broadcast=False)
        if newly or gone:
            self.announce()
            for track in newly:
                self.context.webhooks.notify(
                    "track_published", self.room.info(), participant=self.info(), track=track.info
                )
                for other in self.room.others(self):
                    if other.auto_subscribe and other.can_subscribe and not other.closed:
                        other.subscribe(track)

    def _pending_for(self, transceiver: Transceiver) -> str | None:
        """The cid of the pending track ``transceiver`` carries: by track id, else the first of its kind."""
        track_id = transceiver.remote_track_id
        if track_id and track_id in self.pending_tracks:
            return track_id
        wanted = pb_models.AUDIO if transceiver.kind == "audio" else pb_models.VIDEO
        for cid, info in self.pending_tracks.items():
            if info.type == wanted:
                return cid
        return None

    def _match_pending(self, transceiver: Transceiver) -> pb_models.TrackInfo | None:
        cid = self._pending_for(transceiver)
        return None if cid is None else self.pending_tracks.pop(cid)

    def requested_codec_order(self, transceiver: Transceiver) -> tuple[str, ...]:
        """Codec names (lower case) the AddTrackRequest for ``transceiver``'s track asked for, first wanted first."""
        if any(track.transceiver is transceiver for track in self.published.values()):
            return ()
        cid = self._pending_for(transceiver)
        if cid is None:
            return ()
        return tuple(c.mime_type.rsplit("/", 1)[-1].lower() for c in self.pending_tracks[cid].codecs if c.mime_type)

    async def unpublish(self, track_sid: str, *, broadcast: bool = True) -> None:
        """Stop forwarding a published track and remove it from every subscriber."""
        track = self.published.pop(track_sid, None)
        if track is None:
            return
        track.close()
        for down in list(track.downtracks.values()):
            down.subscriber.unsubscribe(track_sid, track=track)
        self.room.remember_track_sid(self.identity, track_sid)
        for other in self.room.others(self):
            other.denied_tracks.discard(track_sid)
        self._log("unpublish", track=track_sid)
        self.context.webhooks.notify("track_unpublished", self.room.info(), participant=self.info(), track=track.info)
        if broadcast:
            self.announce()

    # ----- subscribing -----

    def subscribe(self, track: PublishedTrack) -> None:
        """Add a downtrack for ``track`` and renegotiate the subscriber PC."""
        if self.closed or track.sid in self.subscriptions or track.publisher is self:
            return
        if track.publisher.hidden:
            # Nobody may learn of a hidden participant, so nobody receives its tracks.
            return
        if not track.publisher.subscription_permissions.allows(self.identity, self.sid, track.sid):
            self._tell_permission(track, allowed=False)
            return
        if self.single_pc:
            down = DownTrack(track, self, None, is_ready=self.transports.ready_to_send)
            # Bound to an m-line when the client next offers one.
            self.transports.sections.waiting.append(down)
        else:
            transceiver = self.transports.add_sending_section(track, msid_stream_id(track, self))
            if transceiver is None:
                return
            down = DownTrack(track, self, transceiver, is_ready=self.transports.ready_to_send)
        track.downtracks[self.sid] = down
        self.subscriptions[track.sid] = down
        self._log("subscribe", track=track.sid, publisher=track.publisher.identity)
        if len(track.downtracks) == 1:
            notice = pb_rtc.SignalResponse()
            notice.track_subscribed.track_sid = track.sid
            track.publisher.send(notice)
        self.transports.request_negotiation()

    def _tell_permission(self, track: PublishedTrack, *, allowed: bool) -> None:
        """Tell this subscriber (once per change) whether it may subscribe to ``track``."""
        if allowed == (track.sid not in self.denied_tracks):
            return
        if allowed:
            self.denied_tracks.discard(track.sid)
        elif len(self.denied_tracks) < _MAX_DENIED_TRACKS:
            self.denied_tracks.add(track.sid)
        update = pb_rtc.SignalResponse()
        update.subscription_permission_update.participant_sid = track.publisher.sid
        update.subscription_permission_update.track_sid = track.sid
        update.subscription_permission_update.allowed = allowed
        self.send(update)

    def set_subscription_permissions(self, request: pb_rtc.SubscriptionPermission) -> None:
        """Take the publisher's new rule: end subscriptions it no longer allows, start the ones it now allows
        for subscribers that auto-subscribe or were refused before. Bounds are the caller's."""
        self.subscription_permissions.replace(request)
        for track in list(self.published.values()):
            for down in list(track.downtracks.values()):
                subscriber = down.subscriber
                if not self.subscription_permissions.allows(subscriber.identity, subscriber.sid, track.sid):
                    subscriber.unsubscribe(track.sid, track=track)
                    subscriber._tell_permission(track, allowed=False)
            for other in self.room.others(self):
                if other.closed or track.sid in other.subscriptions or not other.can_subscribe:
                    continue
                if not self.subscription_permissions.allows(other.identity, other.sid, track.sid):
                    continue
                if track.sid in other.denied_tracks or other.auto_subscribe:
                    other._tell_permission(track, allowed=True)
                    other.subscribe(track)

    def unsubscribe(self, track_sid: str, *, track: PublishedTrack | None = None) -> None:
        """Remove the downtrack for ``track_sid`` (only when it forwards ``track``, if given) and renegotiate."""
        down = self.subscriptions.get(track_sid)
        if down is None or (track is not None and down.track is not track):
            return
        del self.subscriptions[track_sid]
        down.track.downtracks.pop(self.sid, None)
        down.close()
        self.transports.release(down)
        self._log("unsubscribe", track=track_sid)
        self.transports.request_negotiation()

    def set_subscribed(self, track_sids: list[str], subscribe: bool) -> None:
        """Subscribe to (or unsubscribe from) others' tracks by sid, skipping unknown ones (bounds are the caller's)."""
        for sid in track_sids:
            if subscribe:
                track = self.find_track(sid)
                if track is not None:
                    self.subscribe(track)
            else:
                self.unsubscribe(sid)

    def find_track(self, track_sid: str) -> PublishedTrack | None:
        """Another participant's published track ``track_sid``, if any."""
        for other in self.room.others(self):
            track = other.published.get(track_sid)
            if track is not None:
                return track
        return None

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
        left = "participant_left" if self.was_active else "participant_connection_aborted"
        self.context.webhooks.notify(left, self.room.info(), participant=info)
        self._log("leave", sid=self.sid, reason=reason, code=pb_models.DisconnectReason.Name(disconnect_reason))
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.transports.close()
        await self.connection.close(reason)
        self.context.left_room()

    def maintain(self, now: float) -> None:
        """Periodic per-participant work (called by the server's ticker)."""
        for down in list(self.subscriptions.values()):
            down.maintain(now)
