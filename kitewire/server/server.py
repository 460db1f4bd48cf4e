"""The embedded SFU: one aiohttp application serving LiveKit signalling
(``/rtc``, ``/rtc/v1``, ``/rtc/validate``, ``/rtc/v1/validate``) and the
server API over Twirp (``/twirp/...``, see ``twirp``), and owning the rooms.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from aiohttp import web
from livekit.protocol import connector as pb_connector
from livekit.protocol import egress as pb_egress
from livekit.protocol import ingress as pb_ingress
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc
from livekit.protocol import sip as pb_sip

from kitewire.signal.connection import ServerSignalConnection, server_websocket
from kitewire.signal.join import JoinParams, parse_join_request
from kitewire.signal.token import AccessClaims, TokenError, verify_token
from kitewire.transport import PeerConnection, PeerConnectionConfig
from kitewire.transport.udp_mux import UdpMux

from .agents import AGENT_DISPATCH_SERVICE, AgentService
from .config import ServerConfig
from .context import ParticipantContext
from .events import log_event
from .http_guard import (
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE_BYTES,
    BadRequestLog,
    ConnectionGuard,
)
from .ids import new_id
from .live_signals import TICK_SECONDS as _SIGNALS_TICK_SECONDS
from .live_signals import RoomSignals
from .media_settings import SERVER_CODECS, SERVER_HEADER_EXTENSIONS
from .participant import DEPENDENT_KINDS, PARTICIPANT_KINDS, Participant
from .room import Room, RoomManager, RoomSettings
from .room_service import ROOM_SERVICE, RoomService
from .signal_loop import run_signal_loop
from .twirp import TwirpRouter
from .webhooks import WebhookNotifier

__all__ = ["JoinRefused", "Server"]

logger = logging.getLogger("kitewire.server")

# How often the server re-checks layer choices and pending keyframe requests.
_TICK_SECONDS = 0.25


class JoinRefused(Exception):
    """A join that must be answered with an HTTP error."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Server:
    """A LiveKit-compatible SFU on one HTTP port.

    Usage::

        async with Server(ServerConfig.dev(port=0)) as server:
            print(server.url)   # ws://127.0.0.1:<port>

    ``start()``/``stop()`` may be used instead of the context manager.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config if config is not None else ServerConfig.dev()
        self.config.validate()
        #: Room and participant events for the configured webhook URLs.
        self.webhooks = WebhookNotifier(self.config.webhook_settings())
        self.rooms: RoomManager[Participant] = RoomManager(
            self.config.empty_timeout,
            self.webhooks,
            departure_timeout=self.config.departure_timeout,
            max_participants=self.config.max_participants,
        )
        self.node_id = new_id("ND_")
        self._runner: web.AppRunner | None = None
        self._listeners: list[asyncio.Server] = []
        self._port: int | None = None
        #: Connection caps and the request-header deadline of the HTTP port.
        self.http_guard = ConnectionGuard(
            max_connections=self.config.max_connections,
            max_per_address=self.config.max_connections_per_address,
            header_timeout=self.config.http_header_timeout,
        )
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._media_available: bool | None = None
        #: The server API: ``self.twirp.add_service(descriptor, handlers)`` adds a service (see ``twirp``).
        self.twirp = TwirpRouter(self.config.keys)
        self.twirp.add_service(ROOM_SERVICE, RoomService(self.rooms).handlers())
        # Services livekit-api offers that kitewire does not have: a Twirp "unimplemented" naming them.
        for module, name in (
            (pb_egress, "Egress"),
            (pb_ingress, "Ingress"),
            (pb_sip, "SIP"),
            (pb_connector, "Connector"),
        ):
            self.twirp.add_unimplemented(module.DESCRIPTOR.services_by_name[name])
        #: rtc.udp_port: the one UDP socket every PeerConnection shares (None: a socket per connection).
        self.udp_mux: UdpMux | None = None

        #: Agent workers on /agent, their dispatch, and AgentDispatchService.
        self.agents = AgentService(lambda: self.rooms.rooms, self.config.keys, node_id=self.node_id)
        self.twirp.add_service(AGENT_DISPATCH_SERVICE, self.agents.dispatch_service.handlers())

    # ----- lifecycle -----

    @property
    def port(self) -> int:
        """The bound TCP port (after start)."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port`` for clients (after start)."""
        host = self.config.bind
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` (after start)."""
        return "http" + self.url[2:]

    async def start(self) -> None:
        """Bind the port and start serving."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/", self._handle_root)
        app.router.add_get("/rtc", self._handle_rtc)
        app.router.add_get("/rtc/v1", self._handle_rtc)
        app.router.add_get("/rtc/validate", self._handle_validate)
        app.router.add_get("/rtc/v1/validate", self._handle_validate)
        app.router.add_get("/agent", self.agents.handle_agent)
        self.twirp.install(app)
        # Request handler options (aiohttp passes these runner arguments to each connection's handler).
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=self.config.http_idle_timeout,
            max_line_size=MAX_REQUEST_LINE_BYTES,
            max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADERS,
            logger=BadRequestLog(logging.getLogger("kitewire.server.http")),
        )
        await runner.setup()
        assert runner.server is not None
        try:
            self._listeners = await self._listen(runner.server)
            if self.config.udp_port:
                mux = UdpMux()
                await mux.start("127.0.0.1" if self.config.ice_loopback_only else "0.0.0.0", self.config.udp_port)
                self.udp_mux = mux
        except OSError:
            for listener in self._listeners:
                listener.close()
            self._listeners = []
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = [sock for listener in self._listeners for sock in listener.sockets]
        self._port = sockets[0].getsockname()[1] if sockets else self.config.port
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        await self.webhooks.start()
        log_event("server_started", url=self.url, loopback_only=self.config.ice_loopback_only)

    async def _listen(self, handler: Any) -> list[asyncio.Server]:
        # aiohttp's low-level server is a protocol factory; listening with it
        # directly (instead of a TCPSite) puts the guard in front of every connection.
        # Every address gets the same port: with port 0, the one the first was given.
        loop = asyncio.get_running_loop()
        listeners: list[asyncio.Server] = []
        port = self.config.port
        try:
            for host in self.config.bind_addresses:
                listener = await loop.create_server(self.http_guard.protocol_factory(handler), host, port)
                listeners.append(listener)
                if port == 0 and listener.sockets:
                    port = listener.sockets[0].getsockname()[1]
        except OSError:
            for listener in listeners:
                listener.close()
            raise
        return listeners

    @property
    def listening_addresses(self) -> list[str]:
        """Where the server really listens (after start), e.g. ``tcp 127.0.0.1:7880``."""
        found = []
        for listener in self._listeners:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                found.append(f"tcp {f'[{host}]' if ':' in host else host}:{port}")
        if self.udp_mux is not None:
            host, port = self.udp_mux.address
            found.append(f"udp {host}:{port} (every WebRTC connection)")
        return found

    async def stop(self) -> None:
        """Disconnect everyone (reason SERVER_SHUTDOWN), close rooms, release the port."""
        if self._runner is None:
            return
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await self.agents.close()
        participants = [p for room in list(self.rooms.rooms.values()) for p in list(room.participants.values())]
        await asyncio.gather(
            *(p.close("server shutting down", pb_models.SERVER_SHUTDOWN) for p in participants),
            return_exceptions=True,
        )
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.rooms.close_all()
        await self.webhooks.stop()
        if self.udp_mux is not None:
            self.udp_mux.close()
            self.udp_mux = None
        runner, self._runner = self._runner, None
        for listener in self._listeners:
            listener.close()
        self._listeners = []
        await runner.cleanup()
        log_event("server_stopped")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _tick(self) -> None:
        # Live signals (speakers, quality, dynacast) every _SIGNALS_TICK_SECONDS, layer
        # maintenance every _TICK_SECONDS.
        signals: weakref.WeakKeyDictionary[Room[Participant], RoomSignals] = weakref.WeakKeyDictionary()
        maintained_at = time.monotonic()
        try:
            while True:
                await asyncio.sleep(_SIGNALS_TICK_SECONDS)
                now = time.monotonic()
                maintain = now - maintained_at >= _TICK_SECONDS
                if maintain:
                    maintained_at = now
                    self.agents.observe()
                for room in list(self.rooms.rooms.values()):
                    room_signals = signals.get(room)
                    if room_signals is None:
                        room_signals = signals[room] = RoomSignals()
                    try:
                        room_signals.tick(room, now)
                    except Exception:
                        logger.exception("live signals of room %s failed", room.name)
                    if not maintain:
                        continue
                    for participant in list(room.participants.values()):
                        try:
                            participant.maintain(now)
                        except Exception:
                            logger.exception("maintenance of %s failed", participant.identity)
        except asyncio.CancelledError:
            pass

    # ----- media -----

    @property
    def media_available(self) -> bool:
        """False when kitewire.transport cannot create PeerConnections (signalling still works)."""
        if self._media_available is None:
            try:
                pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
            except NotImplementedError:
                logger.warning("kitewire.transport.PeerConnection is not implemented: signalling only")
                self._media_available = False
            else:
                self._media_available = True
                self._spawn(pc.close())
        return self._media_available

    def new_peer_connection(self) -> PeerConnection:
        """A server-side PeerConnection honouring the loopback setting (no STUN/TURN)."""
        return PeerConnection(
            PeerConnectionConfig(
                loopback_only=self.config.ice_loopback_only,
                ice_servers=[],
                port_range=self.config.port_range,
                udp_mux=self.udp_mux,
                codecs=list(SERVER_CODECS),
                header_extensions=list(SERVER_HEADER_EXTENSIONS),
            )
        )

    def _context_for(self, room: Room[Participant]) -> ParticipantContext:
        return ParticipantContext(
            settings=self.config,
            node_id=self.node_id,
            media_available=self.media_available,
            new_peer_connection=self.new_peer_connection,
            left_room=lambda: self.rooms.participant_left(room),
            webhooks=self.webhooks,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    # ----- HTTP -----

    async def _handle_root(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    def _authorize(self, request: web.Request) -> tuple[JoinParams, AccessClaims]:
        try:
            params = parse_join_request(request.path, request.query, request.headers)
        except ValueError as exc:
            raise JoinRefused(400, str(exc)) from None
        if not params.token:
            raise JoinRefused(401, "missing access token (Authorization: Bearer or access_token)")
        try:
            claims = verify_token(params.token, self.config.keys)
        except TokenError as exc:
            raise JoinRefused(exc.status, f"invalid token: {exc.reason}") from None
        if not claims.video.room_join:
            raise JoinRefused(403, "permissions denied: token lacks video.roomJoin")
        if not claims.video.room:
            raise JoinRefused(403, "permissions denied: token names no room (video.room)")
        if not claims.identity:
            raise JoinRefused(401, "invalid token: no identity (sub)")
        wanted_room = request.query.get("room")
        if wanted_room and wanted_room != claims.video.room:
            raise JoinRefused(403, f"permissions denied: token is for room {claims.video.room!r}, not {wanted_room!r}")
        if claims.kind.lower() not in PARTICIPANT_KINDS:
            kinds = ", ".join(sorted(k for k in PARTICIPANT_KINDS if k))
            raise JoinRefused(401, f"invalid token: kind must be one of {kinds}, got {claims.kind[:64]!r}")
        room = self.rooms.rooms.get(claims.video.room)
        if room is not None and not room.closed:
            self._check_room_has_space(room, claims)
        return params, claims

    @staticmethod
    def _check_room_has_space(room: Room[Participant], claims: AccessClaims) -> None:
        dependent = PARTICIPANT_KINDS[claims.kind.lower()] in DEPENDENT_KINDS
        reason = room.refusal_for(claims.identity, dependent=dependent)
        if reason is not None:
            raise JoinRefused(403, reason)

    def _refusal(self, request: web.Request, refused: JoinRefused) -> web.Response:
        log_event(
            "refused",
            level=logging.WARNING,
            path=request.path,
            status=refused.status,
            reason=refused.reason,
            peer=request.remote or "",
        )
        return web.Response(status=refused.status, text=refused.reason)

    async def _handle_validate(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
        except JoinRefused as refused:
            return self._refusal(request, refused)
        return web.Response(text="success")

    def _room_for_join(self, claims: AccessClaims) -> Room[Participant]:
        """The room a join enters, opened if needed, with the token's roomConfig applied as CreateRoom would."""
        room = self.rooms.get_or_create(claims.video.room)
        if claims.room_config is not None:
            room.configure(RoomSettings.from_request(claims.room_config))
        return room

    async def _handle_rtc(self, request: web.Request) -> web.StreamResponse:
        try:
            params, claims = self._authorize(request)
        except JoinRefused as refused:
            return self._refusal(request, refused)
        ws = server_websocket()
        if not ws.can_prepare(request).ok:
            return self._refusal(request, JoinRefused(400, "expected a WebSocket upgrade request"))
        await ws.prepare(request)
        connection = ServerSignalConnection(ws)
        if params.reconnect:
            # Resuming a session (same PeerConnections, new signal socket) is not
            # supported: tell the client to rejoin from scratch, which livekit's
            # SDKs do at once. The old session is replaced when that join arrives.
            log_event("resume_refused", room=claims.video.room, identity=claims.identity, reason="full rejoin required")
            leave = pb_rtc.SignalResponse()
            leave.leave.reason = pb_models.STATE_MISMATCH
            leave.leave.action = pb_rtc.LeaveRequest.RECONNECT
            leave.leave.can_reconnect = True
            await connection.send(leave)
            await connection.close("session resume not supported; rejoin")
            return ws
        existing = self.rooms.rooms.get(claims.video.room)
        room = self._room_for_join(claims)
        try:
            self._check_room_has_space(room, claims)
        except JoinRefused as refused:
            # Over the limit after the upgrade (the room's limit came with this token): say why, then close.
            self._refusal(request, refused)
            leave = pb_rtc.SignalResponse()
            leave.leave.reason = pb_models.JOIN_FAILURE
            leave.leave.action = pb_rtc.LeaveRequest.DISCONNECT
            await connection.send(leave)
            await connection.close(refused.reason)
            self.rooms.participant_left(room)
            return ws
        if room is not existing:
            # the agents the room's creator asked for in roomConfig, or the automatic one
            self.agents.room_opened(room, list(claims.room_config.agents) if claims.room_config else [])
        previous = room.participants.get(claims.identity)
        if previous is not None:
            await previous.close("replaced by a new session with the same identity", pb_models.DUPLICATE_IDENTITY)
            room = self._room_for_join(claims)
        participant = Participant(self._context_for(room), room, claims, params, connection)
        room.admit(participant)
        log_event(
            "join",
            room=room.name,
            identity=participant.identity,
            sid=participant.sid,
            sdk=pb_models.ClientInfo.SDK.Name(participant.client_info.sdk),
            version=participant.client_info.version,
            protocol=participant.client_info.protocol,
            form="legacy" if params.legacy else "v1",
        )
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            try:
                await participant.start()
            except Exception as exc:
                logger.exception("join of %s failed", participant.identity)
                await participant.close(f"join failed: {exc}", pb_models.JOIN_FAILURE)
                return ws
            await run_signal_loop(participant)
        except asyncio.CancelledError:
            await participant.close("server stopping", pb_models.SERVER_SHUTDOWN)
        finally:
            if task is not None:
                self._handlers.discard(task)
        return ws
