"""livekit.RoomService: the server API a LiveKit backend calls (through livekit-api or livekit-server-sdk).

Grants as livekit-server requires them: roomCreate for CreateRoom and
DeleteRoom, roomList for ListRooms, roomAdmin for the named room for the rest.
Each effect reaches connected clients through the room and participant objects
(ParticipantUpdate, RoomUpdate, leave, mute, data packets), so the official
SDKs fire their events. A token lacking a grant is refused ``permission_denied``
(livekit-server says ``unauthenticated`` there; the Twirp code for a valid
token without the right is this one). ForwardParticipant, MoveParticipant and
PerformRpc answer ``unimplemented``.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.protocol import models as pb_models
from livekit.protocol import room as pb_room

from kitewire.signal.token import AccessClaims

from .events import log_event
from .limits import (
    MAX_ATTRIBUTES_BYTES,
    MAX_METADATA_BYTES,
    MAX_NAME_BYTES,
    MAX_ROOMS,
    MAX_SEND_DATA_BYTES,
    MAX_SIDS_PER_REQUEST,
)
from .participant import Participant
from .room import Room, RoomManager, RoomSettings
from .twirp import TwirpError, TwirpHandler, require_room_admin, require_room_create, require_room_list

__all__ = ["ROOM_SERVICE", "RoomService"]

logger = logging.getLogger("kitewire.server")

#: The service's descriptor in livekit-protocol.
ROOM_SERVICE = pb_room.DESCRIPTOR.services_by_name["RoomService"]

_DATA_LABELS = {pb_models.DataPacket.RELIABLE: "_reliable", pb_models.DataPacket.LOSSY: "_lossy"}


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _check_text(what: str, text: str, bound: int) -> None:
    if _size(text) > bound:
        raise TwirpError("invalid_argument", f"{what}: expected at most {bound} bytes, got {_size(text)}")


def _check_attributes(attributes: dict[str, str]) -> None:
    total = sum(_size(key) + _size(value) for key, value in attributes.items())
    if total > MAX_ATTRIBUTES_BYTES:
        raise TwirpError("invalid_argument", f"attributes: expected at most {MAX_ATTRIBUTES_BYTES} bytes, got {total}")


class RoomService:
    """The RoomService handlers over one server's rooms; ``handlers()`` is what ``TwirpRouter.add_service`` takes."""

    def __init__(self, rooms: RoomManager[Participant]) -> None:
        self._rooms = rooms

    def handlers(self) -> dict[str, TwirpHandler]:
        """Method name -> handler, for every method kitewire implements."""
        return {
            "CreateRoom": self.create_room,
            "ListRooms": self.list_rooms,
            "DeleteRoom": self.delete_room,
            "ListParticipants": self.list_participants,
            "GetParticipant": self.get_participant,
            "RemoveParticipant": self.remove_participant,
            "MutePublishedTrack": self.mute_published_track,
            "UpdateParticipant": self.update_participant,
            "UpdateSubscriptions": self.update_subscriptions,
            "SendData": self.send_data,
            "UpdateRoomMetadata": self.update_room_metadata,
        }

    # ----- lookups -----

    def _room(self, name: str) -> Room[Participant]:
        room = self._rooms.rooms.get(name)
        if room is None or room.closed:
            raise TwirpError("not_found", f"requested room does not exist: {name[:MAX_NAME_BYTES]!r}")
        return room

    def _participant(self, room_name: str, identity: str) -> Participant:
        if not identity:
            raise TwirpError("invalid_argument", "identity cannot be empty")
        room = self._rooms.rooms.get(room_name)
        participant = room.participants.get(identity) if room is not None and not room.closed else None
        if participant is None or participant.closed:
            raise TwirpError(
                "not_found",
                f"participant does not exist: {identity[:MAX_NAME_BYTES]!r} in room {room_name[:MAX_NAME_BYTES]!r}",
            )
        return participant

    # ----- rooms -----

    async def create_room(self, request: pb_room.CreateRoomRequest, claims: AccessClaims) -> pb_models.Room:
        """Open a room (or update an open one's non-zero settings) and return it."""
        require_room_create(claims)
        if not request.name:
            raise TwirpError("invalid_argument", "no room name")
        _check_text("name", request.name, MAX_NAME_BYTES)
        _check_text("metadata", request.metadata, MAX_METADATA_BYTES)
        if request.name not in self._rooms.rooms and len(self._rooms.rooms) >= MAX_ROOMS:
            raise TwirpError("resource_exhausted", f"at most {MAX_ROOMS} rooms may be open at once")
        room = self._rooms.create(request.name, RoomSettings.from_request(request))
        log_event("room_configured", room=room.name, sid=room.sid, max_participants=room.max_participants)
        return room.info()

    async def list_rooms(self, request: pb_room.ListRoomsRequest, claims: AccessClaims) -> pb_room.ListRoomsResponse:
        """Every open room, or those of ``names``."""
        require_room_list(claims)
        wanted = set(request.names)
        response = pb_room.ListRoomsResponse()
        for room in list(self._rooms.rooms.values()):
            if not room.closed and (not wanted or room.name in wanted):
                response.rooms.append(room.info())
        return response

    async def delete_room(self, request: pb_room.DeleteRoomRequest, claims: AccessClaims) -> pb_room.DeleteRoomResponse:
        """Close the room; everyone in it is disconnected with reason ROOM_DELETED."""
        require_room_create(claims)
        room = self._room(request.room)
        participants = list(room.participants.values())
        self._rooms.remove(room)
        results = await asyncio.gather(
            *(p.close("room deleted", pb_models.ROOM_DELETED) for p in participants), return_exceptions=True
        )
        for participant, result in zip(participants, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("closing %s for DeleteRoom failed", participant.identity, exc_info=result)
        return pb_room.DeleteRoomResponse()

    async def update_room_metadata(
        self, request: pb_room.UpdateRoomMetadataRequest, claims: AccessClaims
    ) -> pb_models.Room:
        """Set the room's metadata; everyone in it gets a RoomUpdate (room_metadata_changed)."""
        _check_text("metadata", request.metadata, MAX_METADATA_BYTES)
        require_room_admin(claims, request.room)
        room = self._room(request.room)
        room.set_metadata(request.metadata)
        return room.info()

    # ----- participants -----

    async def list_participants(
        self, request: pb_room.ListParticipantsRequest, claims: AccessClaims
    ) -> pb_room.ListParticipantsResponse:
        """The participants of a room (none for a room that is not open, as livekit-server answers)."""
        require_room_admin(claims, request.room)
        response = pb_room.ListParticipantsResponse()
        room = self._rooms.rooms.get(request.room)
        if room is not None and not room.closed:
            response.participants.extend(p.info() for p in list(room.participants.values()) if not p.closed)
        return response

    async def get_participant(
        self, request: pb_room.RoomParticipantIdentity, claims: AccessClaims
    ) -> pb_models.ParticipantInfo:
        """One participant's info."""
        require_room_admin(claims, request.room)
        return self._participant(request.room, request.identity).info()

    async def remove_participant(
        self, request: pb_room.RoomParticipantIdentity, claims: AccessClaims
    ) -> pb_room.RemoveParticipantResponse:
        """Disconnect a participant with reason PARTICIPANT_REMOVED."""
        require_room_admin(claims, request.room)
        participant = self._participant(request.room, request.identity)
        await participant.close("removed by the server API", pb_models.PARTICIPANT_REMOVED)
        return pb_room.RemoveParticipantResponse()

    async def mute_published_track(
        self, request: pb_room.MuteRoomTrackRequest, claims: AccessClaims
    ) -> pb_room.MuteRoomTrackResponse:
        """Mute a published track: the publisher's SDK mutes it, subscribers see track_muted.

        Unmuting from the server is refused, as livekit-server refuses it unless
        ``room.enable_remote_unmute`` is set (kitewire has no such setting).
        """
        require_room_admin(claims, request.room)
        participant = self._participant(request.room, request.identity)
        if not request.muted:
            raise TwirpError("failed_precondition", "remote unmute not enabled")
        info = participant.set_track_muted(request.track_sid, True, tell_client=True)
        if info is None:
            raise TwirpError("not_found", f"track is not found: {request.track_sid[:MAX_NAME_BYTES]!r}")
        response = pb_room.MuteRoomTrackResponse()
        response.track.CopyFrom(info)
        return response

    async def update_participant(
        self, request: pb_room.UpdateParticipantRequest, claims: AccessClaims
    ) -> pb_models.ParticipantInfo:
        """Change a participant's name, metadata, attributes and permission; it and the room hear the change."""
        _check_text("name", request.name, MAX_NAME_BYTES)
        _check_text("metadata", request.metadata, MAX_METADATA_BYTES)
        require_room_admin(claims, request.room)
        participant = self._participant(request.room, request.identity)
        merged = dict(participant.attributes)
        for key, value in request.attributes.items():
            if value:
                merged[key] = value
            else:
                merged.pop(key, None)
        _check_attributes(merged)
        if request.HasField("permission"):
            await participant.update_permission(request.permission)
        if request.name or request.metadata or request.attributes:
            participant.update_state(name=request.name, metadata=request.metadata, attributes=dict(request.attributes))
        return participant.info()

    async def update_subscriptions(
        self, request: pb_room.UpdateSubscriptionsRequest, claims: AccessClaims
    ) -> pb_room.UpdateSubscriptionsResponse:
        """Subscribe a participant to tracks or unsubscribe it (track_subscribed / track_unsubscribed)."""
        require_room_admin(claims, request.room)
        sids = list(request.track_sids)
        for entry in request.participant_tracks:
            sids.extend(entry.track_sids)
        if len(sids) > MAX_SIDS_PER_REQUEST:
            raise TwirpError("invalid_argument", f"expected at most {MAX_SIDS_PER_REQUEST} track sids, got {len(sids)}")
        participant = self._participant(request.room, request.identity)
        if request.subscribe and not participant.can_subscribe:
            raise TwirpError("failed_precondition", "participant may not subscribe (canSubscribe=false)")
        participant.set_subscribed(sids, request.subscribe)
        return pb_room.UpdateSubscriptionsResponse()

    async def send_data(self, request: pb_room.SendDataRequest, claims: AccessClaims) -> pb_room.SendDataResponse:
        """Send a data packet from the server to everyone in the room or to the destination identities."""
        require_room_admin(claims, request.room)
        if len(request.nonce) not in (0, 16):
            raise TwirpError(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(request.nonce)} bytes"
            )
        if len(request.data) > MAX_SEND_DATA_BYTES:
            raise TwirpError(
                "invalid_argument", f"data: expected at most {MAX_SEND_DATA_BYTES} bytes, got {len(request.data)}"
            )
        label = _DATA_LABELS.get(request.kind)
        if label is None:
            raise TwirpError("invalid_argument", f"kind: expected RELIABLE or LOSSY, got {request.kind}")
        room = self._room(request.room)
        destinations = set(request.destination_identities)
        if request.destination_sids:
            wanted_sids = set(request.destination_sids)
            destinations.update(p.identity for p in room.participants.values() if p.sid in wanted_sids)
        packet = pb_models.DataPacket()
        packet.kind = request.kind
        packet.destination_identities.extend(sorted(destinations))
        packet.user.payload = request.data
        packet.user.topic = request.topic
        packet.user.nonce = request.nonce
        packet.user.destination_identities.extend(sorted(destinations))
        payload = packet.SerializeToString()
        for participant in list(room.participants.values()):
            if not destinations or participant.identity in destinations:
                participant.relay.deliver(label, payload)
        return pb_room.SendDataResponse()
