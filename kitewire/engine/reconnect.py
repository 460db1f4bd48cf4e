"""A client's connection to a room across full rejoins (DESIGN.md, "Reconnection is a full rejoin").

kitewire's server answers a resume with "rejoin", so when the current
:class:`RtcEngine` loses its signal socket or a PeerConnection (and the server
did not forbid coming back), :class:`ReconnectingEngine` closes that session and
joins again with the same URL, token and options: backoff from 0.1 s doubling
up to 2 s, bounded by the listener's reconnect timeout. Each fresh session is
handed to the listener (:meth:`SessionListener.on_rejoined`) to republish its
tracks and reconcile participants; only then is the connection back.

Only the current session's callbacks reach the listener: a dropped session's
late callbacks (teardown, stray messages) are silenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from .handle import EngineError, EngineEvents, EngineFactory, EngineHandle, JoinParameters

__all__ = ["ReconnectingEngine", "SessionListener"]

logger = logging.getLogger("kitewire.engine")

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 2.0


class SessionListener(EngineEvents, Protocol):
    """What :class:`ReconnectingEngine` reports: the current session's events and the rejoins.

    A session's ``on_connection_lost`` is handled by the ReconnectingEngine and never
    reaches this listener; ``on_disconnected`` is the final end (left, refused, or the
    reconnect timeout passed).
    """

    def on_reconnecting(self) -> None:
        """The session was lost; rejoining starts."""

    def on_session_dropped(self) -> None:
        """The lost (or half-restored) session was closed, pipelines and all: before every attempt."""

    async def on_rejoined(self, engine: EngineHandle, join: signal_pb.JoinResponse) -> None:
        """A fresh session joined: bring the room in line with ``join`` and republish on ``engine``.

        Reconcile synchronously, before awaiting anything, so that no message of the new
        session is handled first. Raising EngineError makes this attempt fail and retry.
        """

    def on_reconnected(self) -> None:
        """The fresh session is fully restored."""


class _SessionEvents:
    """One session's callbacks, forwarded while it is the current one."""

    def __init__(self, owner: ReconnectingEngine) -> None:
        self._owner = owner
        self._listener = owner.listener
        self.active = True
        self.lost = False

    def on_connection_lost(self, reason: int) -> None:
        self.lost = True
        if self.active:
            self._owner.connection_lost(self, reason)

    def on_disconnected(self, reason: int) -> None:
        if self.active:
            self._owner.end(reason)

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        if self.active:
            self._listener.on_participant_update(participants)

    def on_remote_video(self, track_sid: str, participant_sid: str) -> None:
        if self.active:
            self._listener.on_remote_video(track_sid, participant_sid)

    def on_remote_video_ended(self, track_sid: str) -> None:
        if self.active:
            self._listener.on_remote_video_ended(track_sid)

    def on_remote_audio(self, track_sid: str, participant_sid: str) -> None:
        if self.active:
            self._listener.on_remote_audio(track_sid, participant_sid)

    def on_remote_audio_ended(self, track_sid: str) -> None:
        if self.active:
            self._listener.on_remote_audio_ended(track_sid)

    def on_local_track_unpublished(self, track_sid: str) -> None:
        if self.active:
            self._listener.on_local_track_unpublished(track_sid)

    def on_local_track_subscribed(self, track_sid: str) -> None:
        if self.active:
            self._listener.on_local_track_subscribed(track_sid)

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        if self.active:
            self._listener.on_track_mute_requested(track_sid, muted)

    def on_room_update(self, room: models.Room) -> None:
        if self.active:
            self._listener.on_room_update(room)

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        if self.active:
            self._listener.on_data_packet(packet, reliable)

    def on_speakers_changed(self, speakers: list[models.SpeakerInfo]) -> None:
        if self.active:
            self._listener.on_speakers_changed(speakers)

    def on_connection_quality(self, updates: list[signal_pb.ConnectionQualityInfo]) -> None:
        if self.active:
            self._listener.on_connection_quality(updates)

    def on_e2ee_state(self, participant_identity: str, state: int) -> None:
        if self.active:
            self._listener.on_e2ee_state(participant_identity, state)


class ReconnectingEngine:
    """The current :class:`RtcEngine` of one connection, replaced by a full rejoin when lost.

    ``reconnect_timeout`` is asked for when a loss happens (the Room's attribute may be
    changed by the application at any time). ``engine_factory`` makes each join's
    session: :class:`RtcEngine` in this process, or a
    :class:`kitewire.engine.process.RemoteEngine` in the media process.
    """

    def __init__(
        self,
        listener: SessionListener,
        reconnect_timeout: Callable[[], float],
        engine_factory: EngineFactory | None = None,
    ) -> None:
        if engine_factory is None:
            # the in-process engine by default, imported only when it is the one used
            from .session import RtcEngine

            engine_factory = RtcEngine
        self.listener = listener
        self._reconnect_timeout = reconnect_timeout
        self._engine_factory: EngineFactory = engine_factory
        self._engine: EngineHandle | None = None
        self._events: _SessionEvents | None = None
        self._parameters: JoinParameters | None = None
        self._task: asyncio.Task[None] | None = None
        # True once the connection ended for good (left, refused, timed out)
        self.ended = False

    @property
    def engine(self) -> EngineHandle | None:
        """The current session (the last one joined), or None before the first join."""
        return self._engine

    @property
    def reconnecting(self) -> bool:
        """True while a rejoin is under way."""
        return self._task is not None

    async def connect(self, parameters: JoinParameters) -> signal_pb.JoinResponse:
        """Join for the first time (see :meth:`RtcEngine.connect`); a later loss is rejoined
        with the same parameters. Raises EngineError."""
        _, _, join = await self._join(parameters)
        self._parameters = parameters
        return join

    async def _join(self, parameters: JoinParameters) -> tuple[EngineHandle, _SessionEvents, signal_pb.JoinResponse]:
        events = _SessionEvents(self)
        engine = self._engine_factory(events)
        # current from the start: media of the new session may arrive before its join returns
        self._engine, self._events = engine, events
        try:
            join = await engine.connect(parameters)
        except asyncio.CancelledError:
            events.active = False
            await engine.abandon()
            raise
        except EngineError:
            events.active = False
            raise
        return engine, events, join

    async def disconnect(self, reason: int) -> None:
        """Leave: ends a rejoin under way, then the current session. The listener hears
        ``on_disconnected`` once (with ``reason``, unless the connection had already ended)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._engine is not None:
            await self._engine.disconnect(reason)
        # an abandoned session (a rejoin cut short) reports nothing itself
        self.end(reason)

    # -- rejoining ---------------------------------------------------------------

    def connection_lost(self, events: _SessionEvents, reason: int) -> None:
        """A session's report that it broke in a way that may be rejoined."""
        if events is not self._events or self._task is not None or self.ended or self._parameters is None:
            return
        self._task = asyncio.get_running_loop().create_task(self._reconnect(self._parameters, reason))

    async def _reconnect(self, parameters: JoinParameters, reason: int) -> None:
        try:
            await self._rejoin_until_deadline(parameters, reason)
        except Exception:
            logger.exception("reconnecting failed")
            self._silence_current()
            if self._engine is not None:
                with contextlib.suppress(Exception):
                    await self._engine.abandon()
            self.end(reason)
        finally:
            self._task = None

    async def _rejoin_until_deadline(self, parameters: JoinParameters, reason: int) -> None:
        loop = asyncio.get_running_loop()
        self.listener.on_reconnecting()
        deadline = loop.time() + self._reconnect_timeout()
        delay = RECONNECT_FIRST_DELAY
        while not self.ended:
            await self._drop_current()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                attempt = dataclasses.replace(parameters, timeout=min(remaining, parameters.timeout))
                engine, events, join = await self._join(attempt)
            except EngineError as exc:
                logger.info("rejoin attempt failed: %s", exc)
                continue
            try:
                await self.listener.on_rejoined(engine, join)
            except EngineError as exc:
                logger.info("restoring the session failed: %s", exc)
                continue
            if events.lost or self.ended:
                continue
            self.listener.on_reconnected()
            return
        self.end(reason)

    def _silence_current(self) -> None:
        if self._events is not None:
            self._events.active = False

    async def _drop_current(self) -> None:
        self._silence_current()
        if self._engine is not None:
            await self._engine.abandon()
        self.listener.on_session_dropped()

    def end(self, reason: int) -> None:
        """The connection ended for good: tell the listener (once)."""
        if not self.ended:
            self.ended = True
            self.listener.on_disconnected(reason)
