"""A WebRTC PeerConnection with raw-RTP tracks: the facade over the transport's rooms.

One ICE + DTLS transport (:mod:`.aiortc_seam`) carries every m-line
(max-bundle, rtcp-mux). Media is raw RTP in and out: senders take finished RTP
packets and SRTP-protect them synchronously, receivers hand each decrypted
packet with a light parsed header to a callback. This module keeps the JSEP
session (signaling state, which mid is which m-line, connecting); the m-lines
are written by :mod:`.negotiation`, packets routed by :mod:`.router`, and RTCP
reports and transport-cc feedback produced by the generators of
:mod:`.feedback`.

Callbacks are plain attributes. A callback may be a normal function or return
an awaitable (then it is scheduled as a task); the per-packet ``on_rtp`` must be
a normal function.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._callbacks import invoke_callback
from .aiortc_seam import BundleTransport, RTCDataChannel
from .candidates import RemoteCandidates
from .codecs import (
    DEFAULT_CODECS,
    Codec,
    MediaKind,
)
from .datachannel import DataChannel
from .feedback import FeedbackGenerator, run_feedback
from .ice import MAX_REMOTE_CANDIDATES, IceCandidateInit, IceServer
from .negotiation import Negotiator, apply_remote_media, rejected_media, validate_remote
from .reports import ReportGenerator
from .router import RtpRouter
from .rtp import (
    SUPPORTED_HEADER_EXTENSIONS,
    encode_sdes_string,
)
from .sdp import DIRECTIONS, SdpMedia, SdpSession, check_media_sections, parse_sdp, write_sdp
from .sender import SendEncoding, random_ssrc
from .stats import PeerConnectionStats, collect_stats
from .transceiver import Direction, Transceiver
from .twcc import TransportCcGenerator
from .udp_mux import UdpMux

logger = logging.getLogger(__name__)

__all__ = ["ConnectionState", "PeerConnection", "PeerConnectionConfig", "SdpType", "SignalingState"]

SdpType = Literal["offer", "answer"]
ConnectionState = Literal["new", "connecting", "connected", "failed", "closed"]
SignalingState = Literal["stable", "have-local-offer", "have-remote-offer", "closed"]


@dataclass
class PeerConnectionConfig:
    """Configuration of a :class:`PeerConnection`.

    ``loopback_only=True`` gathers only a 127.0.0.1 host candidate (per
    connection; nothing process-wide is patched). STUN/TURN servers are only
    contacted when listed in ``ice_servers``. ``codecs`` lists what we offer and
    accept (kind from the mime type); ``header_extensions`` the extension URIs
    we offer and accept.
    """

    ice_servers: list[IceServer] = field(default_factory=list)
    loopback_only: bool = False
    codecs: list[Codec] = field(default_factory=lambda: list(DEFAULT_CODECS))
    header_extensions: list[str] = field(default_factory=lambda: list(SUPPORTED_HEADER_EXTENSIONS))
    #: ``(start, end)``: the ICE socket binds a UDP port in this range (None: any port).
    port_range: tuple[int, int] | None = None
    #: A shared UDP port (``kitewire.transport.udp_mux.UdpMux``, started) instead of a socket of our own.
    udp_mux: UdpMux | None = None
    #: Seconds between automatic SR/RR reports.
    rtcp_report_interval: float = 1.0
    #: Seconds between transport-wide CC feedback packets (0 disables).
    transport_cc_interval: float = 0.05
    #: CNAME written into SDP a=ssrc lines and RTCP SDES.
    cname: str | None = None


# Descriptions longer than this (~1 ms of parsing; a few browser m-lines) are parsed in a worker thread.
_PARSE_IN_THREAD_CHARS = 16 * 1024
# m-lines handled between returns to the event loop while applying or answering an offer (~1 ms of work).
_MLINES_PER_SLICE = 64


class PeerConnection:
    """A bundled WebRTC peer connection with raw-RTP transceivers.

    Callbacks (attributes):
    ``on_ice_candidate(IceCandidateInit | None)`` for trickle (None = end),
    ``on_track(transceiver)`` when a remote description adds an m-line the
    remote sends on, ``on_data_channel(channel)`` for remote-created channels,
    ``on_connection_state_change(state)``.

    Counters for bad network input: ``malformed_rtp``, ``malformed_rtcp``,
    ``unroutable_rtp``, ``srtp_errors`` (failed authentication or replay).
    """

    def __init__(self, config: PeerConnectionConfig | None = None) -> None:
        if config is None:
            config = PeerConnectionConfig()
        if not isinstance(config, PeerConnectionConfig):
            raise ValueError(f"PeerConnectionConfig expected, got {type(config).__name__}")
        self._config = config
        self.on_ice_candidate: Callable[[IceCandidateInit | None], object] | None = None
        self.on_track: Callable[[Transceiver], object] | None = None
        self.on_data_channel: Callable[[DataChannel], object] | None = None
        self.on_connection_state_change: Callable[[ConnectionState], object] | None = None

        self._state: ConnectionState = "new"
        self._closed = False
        self._cname = config.cname or secrets.token_hex(8)
        self._rtcp_ssrc = random_ssrc()
        self._transceivers: list[Transceiver] = []
        self._data_channels: list[DataChannel] = []
        self._want_data = False
        self._data_mid: str | None = None
        self._mid_order: list[str] = []
        # Every mid ever used in this session: JSEP forbids reusing one.
        self._used_mids: set[str] = set()
        # Remote m-lines with no transceiver (unknown kinds, refused data
        # sections): replayed as port 0 so the m-line order never changes.
        self._foreign_mlines: dict[str, SdpMedia] = {}
        self._local_sdp: str | None = None
        self._remote_sdp: str | None = None
        self._remote_session: SdpSession | None = None
        self._pending_offer: SdpSession | None = None  # remote offer awaiting our answer
        self._local_offer_pending = False
        self._is_offerer: bool | None = None
        # The remote ICE ufrag, password and ice-lite flag, and its DTLS fingerprints.
        self._remote_ice: tuple[str, str, bool] | None = None
        self._remote_fingerprints: list[tuple[str, str]] = []
        self._remote_sctp_port: int | None = None
        self._remote_max_message_size: int | None = None
        self._callback_tasks: set[asyncio.Future[Any]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._state_waiters: list[asyncio.Future[None]] = []
        self._candidates_emitted = False

        # Routing tables rebuilt on every negotiation / learned from packets.
        twcc = TransportCcGenerator(rtcp_ssrc=self._rtcp_ssrc, interval=config.transport_cc_interval)
        reports = ReportGenerator(
            lambda: self._transceivers,
            rtcp_ssrc=self._rtcp_ssrc,
            cname=self._cname,
            interval=config.rtcp_report_interval,
        )
        #: Pluggable feedback: each is told of negotiations, sees routed RTP, sends RTCP on its timer.
        self._feedback: list[FeedbackGenerator] = [reports, twcc]
        self._router = RtpRouter(self._call, observers=[twcc.observe])

        self._transport = BundleTransport(
            config.ice_servers,
            loopback_only=config.loopback_only,
            port_range=config.port_range,
            udp_mux=config.udp_mux,
            on_rtp=self._router.on_rtp,
            on_rtcp=self._router.on_rtcp,
            on_failure=self._on_transport_failure,
        )
        self._remote_candidates = RemoteCandidates(self._transport, loopback_only=config.loopback_only)
        self._negotiator = Negotiator(
            self._transport,
            codecs=config.codecs,
            header_extensions=config.header_extensions,
            cname=self._cname,
        )

    # --- public properties -------------------------------------------------

    @property
    def config(self) -> PeerConnectionConfig:
        """The configuration this connection was created with."""
        return self._config

    @property
    def connection_state(self) -> ConnectionState:
        """ "new", "connecting", "connected", "failed" or "closed"."""
        return self._state

    @property
    def signaling_state(self) -> SignalingState:
        """ "stable", "have-local-offer", "have-remote-offer" or "closed"."""
        if self._closed:
            return "closed"
        if self._local_offer_pending:
            return "have-local-offer"
        if self._pending_offer is not None:
            return "have-remote-offer"
        return "stable"

    @property
    def local_description(self) -> str | None:
        """The last local SDP (offer or answer)."""
        return self._local_sdp

    @property
    def remote_description(self) -> str | None:
        """The last remote SDP."""
        return self._remote_sdp

    @property
    def transceivers(self) -> list[Transceiver]:
        """All transceivers in m-line order (stopped ones included)."""
        return list(self._transceivers)

    @property
    def malformed_rtp(self) -> int:
        """RTP packets too broken to parse."""
        return self._router.malformed_rtp

    @property
    def malformed_rtcp(self) -> int:
        """RTCP packets too broken to parse."""
        return self._router.malformed_rtcp

    @property
    def unroutable_rtp(self) -> int:
        """RTP packets no receiver could be found for."""
        return self._router.unroutable_rtp

    @property
    def srtp_errors(self) -> int:
        """Packets that failed SRTP authentication or replay checks."""
        return self._transport.srtp_errors

    def get_stats(self) -> PeerConnectionStats:
        """A snapshot of per-SSRC send/receive counters and the error counters."""
        router = self._router
        return collect_stats(
            self._state,
            self._transceivers,
            malformed_rtp=router.malformed_rtp,
            malformed_rtcp=router.malformed_rtcp,
            unroutable_rtp=router.unroutable_rtp,
            srtp_errors=self.srtp_errors,
        )

    @property
    def data_channels(self) -> list[DataChannel]:
        """Every data channel created locally or by the remote."""
        return list(self._data_channels)

    # --- media and data setup ------------------------------------------------

    def add_transceiver(
        self,
        kind: MediaKind,
        direction: Direction = "sendrecv",
        *,
        codecs: list[Codec] | None = None,
        send_encodings: list[SendEncoding] | None = None,
        stream_id: str | None = None,
        track_id: str | None = None,
    ) -> Transceiver:
        """Add an m-line (negotiated by the next create_offer).

        ``codecs`` restricts/reorders this m-line's codecs; ``send_encodings``
        with several entries makes it a simulcast sender (``a=rid``,
        ``a=simulcast:send``); ``stream_id``/``track_id`` go into a=msid.
        """
        self._check_open()
        if kind not in ("audio", "video"):
            raise ValueError(f"transceiver kind 'audio' or 'video' expected, got {kind!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"transceiver direction one of {DIRECTIONS} expected, got {direction!r}")
        if send_encodings is not None:
            if not send_encodings:
                raise ValueError("send_encodings: at least one SendEncoding expected, got []")
            rids = [e.rid for e in send_encodings]
            if len(send_encodings) > 1 and (not all(rids) or len(set(rids)) != len(rids)):
                raise ValueError(f"send_encodings: distinct non-empty rids expected, got {rids}")
            for e in send_encodings:
                if not isinstance(e, SendEncoding) or not 0 < e.ssrc <= 0xFFFFFFFF:
                    raise ValueError(f"send_encodings: SendEncoding with 32-bit ssrc expected, got {e!r}")
                if e.rid:
                    encode_sdes_string(e.rid)
        if codecs is not None:
            for c in codecs:
                if c.kind != kind:
                    raise ValueError(f"codecs for a {kind} transceiver expected, got {c.mime_type}")
        transceiver = Transceiver(
            self._transport.send,
            self._rtcp_ssrc,
            kind,
            direction,
            codecs=codecs,
            send_encodings=send_encodings,
            stream_id=stream_id,
            track_id=track_id,
        )
        self._transceivers.append(transceiver)
        return transceiver

    def create_data_channel(
        self,
        label: str,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        protocol: str = "",
    ) -> DataChannel:
        """Create a data channel (adds an m=application line if there is none).

        The channel opens once the connection (and SCTP) is up.
        """
        self._check_open()
        if not isinstance(label, str):
            raise ValueError(f"data channel label: str expected, got {type(label).__name__}")
        if max_retransmits is not None and (not isinstance(max_retransmits, int) or max_retransmits < 0):
            raise ValueError(f"max_retransmits: None or int >= 0 expected, got {max_retransmits!r}")
        self._transport.ensure_sctp(self._on_remote_data_channel)
        self._want_data = True
        channel = self._transport.create_data_channel(
            label, ordered=ordered, max_retransmits=max_retransmits, protocol=protocol
        )
        wrapper = DataChannel(channel)
        self._data_channels.append(wrapper)
        return wrapper

    def _on_remote_data_channel(self, channel: RTCDataChannel) -> None:
        wrapper = DataChannel(channel)
        self._data_channels.append(wrapper)
        self._call(self.on_data_channel, wrapper)

    # --- negotiation ---------------------------------------------------------

    async def create_offer(self) -> str:
        """Create an offer, set it as the local description and return it.

        Gathers candidates on the first call; they are embedded in the SDP and
        also emitted to ``on_ice_candidate``.
        """
        self._check_open()
        if self._pending_offer is not None:
            raise ValueError("create_offer: stable signaling state expected, got have-remote-offer")
        await self._gather()
        if self._is_offerer is None:
            self._is_offerer = True
            self._transport.controlling = True
        session = self._negotiator.base_session()
        used = self._used_mids
        used.update(t.mid for t in self._transceivers if t.mid is not None)
        if self._data_mid is not None:
            used.add(self._data_mid)
        used.update(self._mid_order)
        counter = 0

        def next_mid() -> str:
            nonlocal counter
            while str(counter) in used:
                counter += 1
            mid = str(counter)
            used.add(mid)
            return mid

        by_mid = {t.mid: t for t in self._transceivers if t.mid is not None}
        # m-lines whose rejection both sides agreed on can carry new media.
        recyclable = [
            index
            for index, mid in enumerate(self._mid_order)
            if mid in self._foreign_mlines or (mid in by_mid and by_mid[mid].rejected_negotiated)
        ]
        recyclable.reverse()  # popped from the end: lowest index first
        recycled: set[str] = set()
        for transceiver in self._transceivers:
            if transceiver.mid is None and not transceiver.stopped:
                transceiver.mid = next_mid()
                if recyclable:
                    index = recyclable.pop()
                    recycled.add(self._mid_order[index])
                    self._mid_order[index] = transceiver.mid
                else:
                    self._mid_order.append(transceiver.mid)
        self._forget_mlines(recycled)
        if self._want_data and self._data_mid is None:
            self._data_mid = next_mid()
            self._mid_order.append(self._data_mid)
        by_mid = {t.mid: t for t in self._transceivers if t.mid is not None}
        for mid in self._mid_order:
            if mid == self._data_mid:
                session.media.append(self._negotiator.application_media(mid, "actpass"))
                continue
            offered_transceiver = by_mid.get(mid)
            if offered_transceiver is not None:
                session.media.append(self._negotiator.offer_media(offered_transceiver))
            elif mid in self._foreign_mlines:
                session.media.append(rejected_media(self._foreign_mlines[mid]))
        self._negotiator.finish_session(session)
        self._local_sdp = write_sdp(session)
        self._local_offer_pending = True
        self._update_routes()
        self._emit_candidates(session)
        return self._local_sdp

    def _forget_mlines(self, mids: set[str]) -> None:
        """Drop whatever occupied recycled m-lines (one pass, however many)."""
        if not mids:
            return
        for mid in mids:
            self._foreign_mlines.pop(mid, None)
        self._transceivers = [t for t in self._transceivers if t.mid not in mids]

    async def create_answer(self) -> str:
        """Create an answer to the remote offer, set it as local description, return it."""
        self._check_open()
        offer = self._pending_offer
        if offer is None:
            raise ValueError("create_answer: a remote offer expected first, got none")
        await self._gather()
        session = self._negotiator.base_session()
        # Mixed one/two-byte extensions only if the offerer said it copes (RFC 8285).
        session.extmap_allow_mixed = offer.extmap_allow_mixed
        remote_setup = None
        for m in offer.media:
            if not m.rejected:
                remote_setup = offer.media_setup(m)
                break
        our_setup = "passive" if remote_setup == "active" else "active"
        role = self._transport.role
        if role is None:
            self._transport.set_role("server" if our_setup == "passive" else "client")
        else:
            our_setup = "passive" if role == "server" else "active"
        by_mid = {t.mid: t for t in self._transceivers if t.mid is not None}
        for index, m in enumerate(offer.media):
            await self._pause_between_slices(index)
            if m.kind == "application":
                if m.rejected or "SCTP" not in m.protocol.upper():
                    session.media.append(rejected_media(m))
                else:
                    session.media.append(self._negotiator.application_media(m.mid or "", our_setup, m))
                continue
            transceiver = by_mid.get(m.mid or "")
            if transceiver is None or m.rejected or m.kind not in ("audio", "video"):
                if transceiver is not None:
                    transceiver.mark_rejected()
                session.media.append(rejected_media(m))
                continue
            media = self._negotiator.answer_media(m, transceiver, our_setup)
            if media.rejected:
                transceiver.mark_rejected()
            session.media.append(media)
        self._negotiator.finish_session(session)
        self._local_sdp = await self._write_sdp(session)
        self._pending_offer = None
        self._update_routes()
        self._emit_candidates(session)
        self._maybe_connect()
        return self._local_sdp

    async def set_remote_description(self, sdp: str, type: SdpType) -> None:
        """Apply a remote offer or answer.

        ValueError on malformed SDP, or on more m-lines than
        :data:`~kitewire.transport.sdp.MAX_MEDIA_SECTIONS` (the message names the limit).
        """
        self._check_open()
        if type not in ("offer", "answer"):
            raise ValueError(f"SDP type 'offer' or 'answer' expected, got {type!r}")
        if not isinstance(sdp, str):
            raise ValueError(f"SDP: str expected, got {sdp.__class__.__name__}")
        check_media_sections(sdp)
        if len(sdp) > _PARSE_IN_THREAD_CHARS:
            # Parsing is pure: a big description is parsed beside the event loop,
            # which keeps forwarding media meanwhile. State is checked after.
            session = await asyncio.to_thread(parse_sdp, sdp)
            self._check_open()
        else:
            session = parse_sdp(sdp)
        if type == "answer" and not self._local_offer_pending:
            raise ValueError("set_remote_description(answer): a local offer expected first, got none")
        if type == "offer" and self._local_offer_pending:
            raise ValueError("set_remote_description(offer): stable state expected, got have-local-offer (glare)")
        transport_parameters = validate_remote(session, self._remote_ice[0] if self._remote_ice is not None else None)
        if transport_parameters is not None and self._remote_ice is None:
            self._remote_ice, self._remote_fingerprints = transport_parameters
        if type == "answer":
            await self._apply_remote_answer(session)
            self._local_offer_pending = False
        else:
            if self._is_offerer is None:
                self._is_offerer = False
                self._transport.controlling = session.ice_lite
            await self._apply_remote_offer(session)
            self._pending_offer = session
        self._remote_sdp = sdp
        self._remote_session = session
        await self._remote_candidates.add_from_description(session)
        self._update_routes()
        self._fire_tracks()
        if type == "answer":
            self._maybe_connect()

    async def add_ice_candidate(self, candidate: IceCandidateInit | None) -> None:
        """Add a remote trickle candidate (None or empty candidate = end of candidates).

        ValueError on a malformed candidate line, and on a new candidate once
        :data:`MAX_REMOTE_CANDIDATES` are held (the message names the limit).
        """
        if self._closed:
            return
        if candidate is None or not candidate.candidate.strip():
            await self._transport.add_remote_candidate(None)
            return
        if not isinstance(candidate, IceCandidateInit):
            raise ValueError(f"IceCandidateInit expected, got {type(candidate).__name__}")
        if not await self._remote_candidates.add_line(candidate.candidate):
            raise ValueError(
                f"ICE candidate: at most {MAX_REMOTE_CANDIDATES} remote candidates per connection expected, "
                f"got one more ({candidate.candidate[:80]!r})"
            )

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until ``connection_state`` is "connected".

        Raises ConnectionError if it becomes "failed"/"closed" and
        TimeoutError after ``timeout`` seconds.
        """

        async def wait() -> None:
            while self._state != "connected":
                if self._state in ("failed", "closed"):
                    raise ConnectionError(f"peer connection is {self._state}")
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._state_waiters.append(waiter)
                await waiter

        await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        """Close everything and cancel every task. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks: list[asyncio.Future[Any]] = list(self._tasks)
        if self._connect_task is not None:
            tasks.append(self._connect_task)
        tasks.extend(self._callback_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:
                pass
        self._tasks.clear()
        self._callback_tasks.clear()
        for channel in self._data_channels:
            channel.close()
        await self._transport.close()
        self._set_state("closed")

    # --- SDP building ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError("peer connection is closed")

    async def _pause_between_slices(self, index: int) -> None:
        """Let the event loop forward media between slices of a long description's m-lines."""
        if index and index % _MLINES_PER_SLICE == 0:
            await asyncio.sleep(0)
            self._check_open()

    async def _write_sdp(self, session: SdpSession) -> str:
        if len(session.media) <= _MLINES_PER_SLICE:
            return write_sdp(session)
        # Writing is pure and the session is ours alone: a long one is written beside the event loop.
        text = await asyncio.to_thread(write_sdp, session)
        self._check_open()
        return text

    async def _gather(self) -> None:
        await self._transport.gather()

    # --- applying remote descriptions --------------------------------------------

    async def _apply_remote_offer(self, session: SdpSession) -> None:
        by_mid = {t.mid: t for t in self._transceivers if t.mid is not None}
        # Locally added, not yet negotiated transceivers, in order, per kind: each
        # new remote m-line takes the first of its kind (no search per m-line).
        unpaired: dict[str, collections.deque[Transceiver]] = {
            "audio": collections.deque(),
            "video": collections.deque(),
        }
        for t in self._transceivers:
            if t.mid is None and not t.stopped:
                unpaired[t.kind].append(t)
        order: list[str] = []
        for index, m in enumerate(session.media):
            await self._pause_between_slices(index)
            mid = m.mid if m.mid is not None else str(len(order))
            m.mid = mid
            order.append(mid)
            self._used_mids.add(mid)
            if m.kind == "application":
                if not m.rejected and "SCTP" in m.protocol.upper():
                    self._data_mid = mid
                    self._remote_sctp_port = m.sctp_port or 5000
                    self._remote_max_message_size = m.max_message_size
                    self._transport.ensure_sctp(self._on_remote_data_channel)
                elif mid != self._data_mid:
                    self._foreign_mlines[mid] = m
                continue
            if m.kind not in ("audio", "video"):
                self._foreign_mlines[mid] = m
                continue
            transceiver = by_mid.get(mid)
            if transceiver is None and not m.rejected:
                waiting = unpaired[m.kind]
                transceiver = waiting.popleft() if waiting else None
                if transceiver is None:
                    transceiver = Transceiver(
                        self._transport.send,
                        self._rtcp_ssrc,
                        "video" if m.kind == "video" else "audio",
                        "recvonly",
                        codecs=None,
                        send_encodings=None,
                        stream_id=None,
                        track_id=None,
                    )
                    self._transceivers.append(transceiver)
                transceiver.mid = mid
            if transceiver is None:
                continue
            if m.rejected:
                transceiver.mark_rejected()
                continue
            apply_remote_media(transceiver, m)
        # The remote recycled m-lines: what used to be there is gone.
        current = set(order)
        self._forget_mlines({mid for mid in self._mid_order if mid not in current})
        self._mid_order = order

    async def _apply_remote_answer(self, session: SdpSession) -> None:
        by_mid = {t.mid: t for t in self._transceivers if t.mid is not None}
        first_live = next((m for m in session.media if not m.rejected), None)
        if first_live is not None and self._transport.role is None:
            setup = session.media_setup(first_live)
            if setup not in ("active", "passive"):
                raise ValueError(f"SDP answer: a=setup:active or passive expected, got {setup!r}")
            self._transport.set_role("server" if setup == "active" else "client")
        for m in session.media:
            if m.kind == "application":
                if not m.rejected and m.mid == self._data_mid:
                    self._remote_sctp_port = m.sctp_port or 5000
                    self._remote_max_message_size = m.max_message_size
                continue
            transceiver = by_mid.get(m.mid or "")
            if transceiver is None:
                continue
            if m.rejected:
                transceiver.mark_rejected()
                continue
            self._negotiator.apply_answer_media(transceiver, m)
            apply_remote_media(transceiver, m)

    def _fire_tracks(self) -> None:
        for transceiver in self._transceivers:
            remote_sends = transceiver.remote_sends
            receiving = remote_sends and transceiver.receives()
            if receiving and not transceiver.track_fired:
                transceiver.track_fired = True
                self._call(self.on_track, transceiver)
            elif not receiving:
                transceiver.track_fired = False

    def _emit_candidates(self, session: SdpSession) -> None:
        if self._candidates_emitted:
            return
        first_index = next((i for i, m in enumerate(session.media) if not m.rejected), None)
        if first_index is None:
            return
        self._candidates_emitted = True
        mid = session.media[first_index].mid
        ufrag = self._transport.local_username
        inits: list[IceCandidateInit | None] = [
            IceCandidateInit(f"candidate:{c.sdp}", mid, first_index, ufrag) for c in self._transport.local_candidates()
        ]
        inits.append(None)
        loop = asyncio.get_running_loop()
        for init in inits:
            # After the caller has the SDP in hand, like a browser's onicecandidate.
            loop.call_soon(self._emit_candidate, init)

    def _emit_candidate(self, init: IceCandidateInit | None) -> None:
        if not self._closed:
            self._call(self.on_ice_candidate, init)

    # --- connection ------------------------------------------------------------------

    def _maybe_connect(self) -> None:
        if self._closed:
            return
        if self._connect_task is None:
            if self._remote_ice is None or not self._remote_fingerprints:
                return
            self._set_state("connecting")
            self._connect_task = asyncio.ensure_future(self._connect())
        elif self._state == "connected":
            self._tasks.append(asyncio.ensure_future(self._maybe_start_sctp()))

    async def _connect(self) -> None:
        assert self._remote_ice is not None
        try:
            if not await self._transport.start(*self._remote_ice, self._remote_fingerprints):
                self._set_state("failed")
                return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("peer connection failed to connect")
            self._set_state("failed")
            return
        self._set_state("connected")
        for generator in self._feedback:
            if generator.interval > 0:
                self._tasks.append(asyncio.ensure_future(run_feedback(generator, self._transport.send)))
        await self._maybe_start_sctp()

    async def _maybe_start_sctp(self) -> None:
        if not self._transport.has_sctp or self._remote_sctp_port is None or self._state != "connected":
            return
        try:
            await self._transport.start_sctp(self._remote_sctp_port, self._remote_max_message_size or 65536)
        except Exception:
            logger.exception("SCTP start failed")

    def _set_state(self, state: ConnectionState) -> None:
        if state == self._state or (self._state == "closed"):
            return
        self._state = state
        waiters, self._state_waiters = self._state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._call(self.on_connection_state_change, state)

    def _on_transport_failure(self) -> None:
        if not self._closed:
            self._set_state("failed")

    # --- packet I/O ---------------------------------------------------------------------

    def _update_routes(self) -> None:
        self._router.update(self._transceivers)
        for generator in self._feedback:
            generator.negotiated(self._transceivers)

    def _call(self, callback: Callable[..., object] | None, *args: object) -> None:
        """Call a user callback; schedule it if it returns an awaitable; never raise."""
        invoke_callback(self._callback_tasks, "callback", callback, callback, *args)
