"""Rooms: who is in them, what they publish, and telling everyone about changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from .events import log_event
from .ids import ROOM_PREFIX, new_id
from .webhooks import WebhookNotifier

__all__ = ["Member", "Room", "RoomManager"]

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

    def send(self, response: pb_rtc.SignalResponse) -> bool: ...


M = TypeVar("M", bound=Member)


class Room(Generic[M]):
    """One room: its participants (any ``Member`` type) by identity, created on first join."""

    def __init__(self, name: str, empty_timeout: float) -> None:
        self.name = name
        self.sid = new_id(ROOM_PREFIX)
        self.created_at = time.time()
        self.empty_timeout = empty_timeout
        self.participants: dict[str, M] = {}
        self.closed = False
        # identity -> track sids it published, oldest first (bounded below)
        self._previous_track_sids: dict[str, list[str]] = {}

    def info(self) -> pb_models.Room:
        """The Room protobuf sent in JoinResponse and RoomUpdate."""
        room = pb_models.Room()
        room.sid = self.sid
        room.name = self.name
        room.empty_timeout = int(self.empty_timeout)
        room.creation_time = int(self.created_at)
        room.creation_time_ms = int(self.created_at * 1000)
        visible = [p for p in self.participants.values() if not p.hidden]
        room.num_participants = len(visible)
        room.num_publishers = sum(1 for p in visible if p.published)
        return room

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
    """All rooms of a server; closes a room ``empty_timeout`` after its last participant left.

    Rooms starting and finishing are reported to ``webhooks``.
    """

    def __init__(self, empty_timeout: float, webhooks: WebhookNotifier | None = None) -> None:
        self.empty_timeout = empty_timeout
        self.webhooks = webhooks if webhooks is not None else WebhookNotifier()
        self.rooms: dict[str, Room[M]] = {}
        self._close_tasks: dict[str, asyncio.Task[None]] = {}

    def get_or_create(self, name: str) -> Room[M]:
        """The open room named ``name``, created when absent."""
        task = self._close_tasks.pop(name, None)
        if task is not None:
            task.cancel()
        room = self.rooms.get(name)
        if room is None or room.closed:
            room = Room(name, self.empty_timeout)
            self.rooms[name] = room
            log_event("room_created", room=name, sid=room.sid)
            self.webhooks.notify("room_started", room.info())
        return room

    def participant_left(self, room: Room[M]) -> None:
        """Schedule closing ``room`` if nobody is left in it."""
        if room.participants or room.closed:
            return
        if room.name in self._close_tasks:
            return
        self._close_tasks[room.name] = asyncio.get_running_loop().create_task(self._close_later(room))

    async def _close_later(self, room: Room[M]) -> None:
        try:
            await asyncio.sleep(self.empty_timeout)
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
