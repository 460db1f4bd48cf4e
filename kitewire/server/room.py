"""Rooms: who is in them, what they publish, and telling everyone about changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from livekit.protocol import models as pb_models
from livekit.protocol import room as pb_room
from livekit.protocol import rtc as pb_rtc

from .events import log_event
from .ids import ROOM_PREFIX, new_id
from .webhooks import WebhookNotifier

__all__ = ["Member", "Room", "RoomManager", "RoomSettings"]

logger = logging.getLogger("kitewire.server")

# Bounds on the sids a room remembers for rejoining publishers.
_REMEMBERED_SIDS_PER_IDENTITY = 32
_REMEMBERED_IDENTITIES = 1024


class Member(Protocol):
    """What a room needs of a participant (``Participant`` is one)."""

    @property
    def identity(self) -> str: ...

    @property
    def hidden(self) -> bool: ...

    @property
    def published(self) -> Mapping[str, object]: ...

    @property
    def pending_tracks(self) -> Mapping[str, pb_models.TrackInfo]: ...

    @property
    def dependent(self) -> bool:
        """Agents and egress: they do not count towards ``max_participants`` (livekit's rule)."""
        ...

    def send(self, response: pb_rtc.SignalResponse) -> bool: ...


M = TypeVar("M", bound=Member)


@dataclass(frozen=True)
class RoomSettings:
    """What CreateRoom or a token's roomConfig sets; zero or empty leaves a setting as it is (livekit's rule)."""

    empty_timeout: float = 0.0
    departure_timeout: float = 0.0
    max_participants: int = 0
    metadata: str = ""

    @classmethod
    def from_request(cls, request: pb_room.CreateRoomRequest | pb_room.RoomConfiguration) -> RoomSettings:
        """The settings a CreateRoomRequest or RoomConfiguration carries."""
        return cls(
            empty_timeout=float(request.empty_timeout),
            departure_timeout=float(request.departure_timeout),
            max_participants=request.max_participants,
            metadata=request.metadata,
        )


class Room(Generic[M]):
    """One room: its participants (any ``Member`` type) by identity, created on first join or by the server API.

    ``empty_timeout`` is how long a room nobody has joined yet stays open,
    ``departure_timeout`` how long it outlives its last participant (seconds);
    ``max_participants`` (0: no limit) caps participants that are not agents or egress.
    """

    def __init__(self, name: str, empty_timeout: float, departure_timeout: float | None = None) -> None:
        self.name = name
        self.sid = new_id(ROOM_PREFIX)
        self.created_at = time.time()
        self.empty_timeout = empty_timeout
        self.departure_timeout = empty_timeout if departure_timeout is None else departure_timeout
        self.max_participants = 0
        self.metadata = ""
        self.participants: dict[str, M] = {}
        self.closed = False
        #: Whether anyone has joined yet (an empty room closes after empty_timeout before, departure_timeout after).
        self.joined_once = False
        # identity -> track sids it published, oldest first (bounded below)
        self._previous_track_sids: dict[str, list[str]] = {}

    def info(self) -> pb_models.Room:
        """The Room protobuf sent in JoinResponse, RoomUpdate and the server API."""
        room = pb_models.Room()
        room.sid = self.sid
        room.name = self.name
        room.empty_timeout = int(self.empty_timeout)
        room.departure_timeout = int(self.departure_timeout)
        room.max_participants = self.max_participants
        room.metadata = self.metadata
        room.creation_time = int(self.created_at)
        room.creation_time_ms = int(self.created_at * 1000)
        visible = [p for p in self.participants.values() if not p.hidden]
        room.num_participants = len(visible)
        room.num_publishers = sum(1 for p in visible if p.published)
        return room

    def configure(self, settings: RoomSettings) -> None:
        """Apply the non-zero ``settings``; a changed metadata is told to everyone in a RoomUpdate."""
        if settings.empty_timeout > 0:
            self.empty_timeout = settings.empty_timeout
        if settings.departure_timeout > 0:
            self.departure_timeout = settings.departure_timeout
        if settings.max_participants > 0:
            self.max_participants = settings.max_participants
        if settings.metadata:
            self.set_metadata(settings.metadata)

    def set_metadata(self, metadata: str) -> None:
        """Set the room's metadata and, when it changed, queue a RoomUpdate for everyone (room_metadata_changed)."""
        if metadata == self.metadata:
            return
        self.metadata = metadata
        self.broadcast_room_update()

    def broadcast_room_update(self) -> None:
        """Queue a RoomUpdate with the room's current info for every participant."""
        response = pb_rtc.SignalResponse()
        response.room_update.room.CopyFrom(self.info())
        for participant in list(self.participants.values()):
            participant.send(response)

    def admit(self, participant: M) -> None:
        """Add ``participant`` (replacing a session of the same identity, which the caller closed)."""
        self.participants[participant.identity] = participant
        if not participant.dependent:
            self.joined_once = True

    def refusal_for(self, identity: str, *, dependent: bool) -> str | None:
        """Why a join of ``identity`` is refused (the room is full), or None.

        A rejoin replaces the session of the same identity, so that one does not count.
        """
        if self.max_participants <= 0 or dependent:
            return None
        counted = sum(1 for key, p in self.participants.items() if key != identity and not p.dependent)
        if counted >= self.max_participants:
            return f"room {self.name!r} is full: it allows {self.max_participants} participants (max_participants)"
        return None

    def others(self, participant: M) -> list[M]:
        """Every participant except ``participant``."""
        return [p for p in self.participants.values() if p is not participant]

    def broadcast_update(self, infos: Iterable[pb_models.ParticipantInfo], *, exclude: M | None = None) -> None:
        """Queue a MUpdate with ``infos`` for everyone but ``exclude``.

        Infos of hidden participants are left out: this is the one place other
        participants hear about someone, so hidden ones stay hidden whatever
        changed. Sending only queues on each connection, so one client that
        does not read delays nobody else.
        """
        visible = [info for info in infos if not info.permission.hidden]
        if not visible:
            return
        response = pb_rtc.SignalResponse()
        response.update.participants.extend(visible)
        for participant in list(self.participants.values()):
            if participant is not exclude:
                participant.send(response)

    def remember_track_sid(self, identity: str, track_sid: str) -> None:
        """Note that ``identity`` published ``track_sid``, so a rejoin of it may claim the sid again."""
        sids = self._previous_track_sids.pop(identity, [])
        if track_sid not in sids:
            sids.append(track_sid)
        self._previous_track_sids[identity] = sids[-_REMEMBERED_SIDS_PER_IDENTITY:]
        while len(self._previous_track_sids) > _REMEMBERED_IDENTITIES:
            del self._previous_track_sids[next(iter(self._previous_track_sids))]

    def claimable_track_sid(self, identity: str, track_sid: str) -> bool:
        """Whether ``identity`` may publish under ``track_sid``: one it published before that nobody publishes now."""
        if track_sid not in self._previous_track_sids.get(identity, []):
            return False
        return not any(
            track_sid in p.published or any(info.sid == track_sid for info in p.pending_tracks.values())
            for p in self.participants.values()
        )


class RoomManager(Generic[M]):
    """All rooms of a server; closes an empty room after its empty or departure timeout.

    ``empty_timeout``, ``departure_timeout`` (None: the empty timeout) and
    ``max_participants`` are every room's defaults (the server API and a
    token's roomConfig may set them per room). Rooms starting and finishing
    are reported to ``webhooks``.
    """

    def __init__(
        self,
        empty_timeout: float,
        webhooks: WebhookNotifier | None = None,
        *,
        departure_timeout: float | None = None,
        max_participants: int = 0,
    ) -> None:
        self.empty_timeout = empty_timeout
        self.departure_timeout = departure_timeout
        self.max_participants = max_participants
        self.webhooks = webhooks if webhooks is not None else WebhookNotifier()
        self.rooms: dict[str, Room[M]] = {}
        self._close_tasks: dict[str, asyncio.Task[None]] = {}

    def get_or_create(self, name: str) -> Room[M]:
        """The open room named ``name``, created when absent; a pending close is called off (someone is joining)."""
        self._cancel_close(name)
        room = self.rooms.get(name)
        if room is None or room.closed:
            room = self._new_room(name)
        return room

    def create(self, name: str, settings: RoomSettings) -> Room[M]:
        """Open (or reconfigure) the room ``name`` for the server API; empty, it closes after its ``empty_timeout``."""
        room = self.rooms.get(name)
        if room is None or room.closed:
            room = self._new_room(name)
        room.configure(settings)
        if not room.participants:
            # A new or changed timeout starts counting now.
            self._cancel_close(name)
            self._schedule_close(room)
        return room

    def _new_room(self, name: str) -> Room[M]:
        room: Room[M] = Room(name, self.empty_timeout, self.departure_timeout)
        room.max_participants = self.max_participants
        self.rooms[name] = room
        log_event("room_created", room=name, sid=room.sid)
        self.webhooks.notify("room_started", room.info())
        return room

    def remove(self, room: Room[M]) -> None:
        """Close ``room`` now (DeleteRoom); its participants are the caller's to disconnect."""
        if self.rooms.get(room.name) is room:
            self._cancel_close(room.name)
            del self.rooms[room.name]
        if not room.closed:
            room.closed = True
            log_event("room_closed", room=room.name, sid=room.sid, reason="deleted")
            self.webhooks.notify("room_finished", room.info())

    def participant_left(self, room: Room[M]) -> None:
        """Schedule closing ``room`` if nobody is left in it."""
        if room.participants or room.closed:
            return
        self._schedule_close(room)

    def _cancel_close(self, name: str) -> None:
        task = self._close_tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def _schedule_close(self, room: Room[M]) -> None:
        if room.name in self._close_tasks:
            return
        delay = room.departure_timeout if room.joined_once else room.empty_timeout
        self._close_tasks[room.name] = asyncio.get_running_loop().create_task(self._close_later(room, delay))

    async def _close_later(self, room: Room[M], delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return
        self._close_tasks.pop(room.name, None)
        if room.participants or self.rooms.get(room.name) is not room:
            return
        room.closed = True
        del self.rooms[room.name]
        log_event("room_closed", room=room.name, sid=room.sid)
        self.webhooks.notify("room_finished", room.info())

    async def close_all(self) -> None:
        """Cancel pending closes and forget every room (participants are closed by the server)."""
        for task in self._close_tasks.values():
            task.cancel()
        self._close_tasks.clear()
        for room in self.rooms.values():
            room.closed = True
            self.webhooks.notify("room_finished", room.info())
        self.rooms.clear()
