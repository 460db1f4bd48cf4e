"""A WebRTC PeerConnection with raw-RTP tracks, built on aiortc's ICE, DTLS and SCTP.

One ICE + DTLS transport carries every m-line (max-bundle, rtcp-mux). Media is
raw RTP in and out: senders take finished RTP packets and SRTP-protect them
synchronously, receivers hand each decrypted packet with a light parsed header
to a callback. RTCP feedback is routed to the sender or receiver that owns the
SSRC it is about.

Callbacks are plain attributes. A callback may be a normal function or return
an awaitable (then it is scheduled as a task); the per-packet ``on_rtp`` must be
a normal function.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._callbacks import invoke_callback
from .aiortc_seam import SCTP_MAX_MESSAGE_SIZE, BundleTransport, RTCDataChannel
from .codecs import (
    DEFAULT_CODECS,
    REJECTED_CODECS,
    SUPPORTED_FEEDBACK,
    VIDEO_ONLY_EXTENSIONS,
    Codec,
    MediaKind,
    codec_key,
    h264_packetization_mode,
)
from .datachannel import DataChannel
from .feedback import FeedbackGenerator, run_feedback
from .ice import MAX_REMOTE_CANDIDATES, IceCandidateInit, IceServer
from .receiver import RtpReceiver
from .reports import ReportGenerator
from .router import RtpRouter
from .rtp import (
    SUPPORTED_HEADER_EXTENSIONS,
    encode_sdes_string,
)
from .sdp import DIRECTIONS, SdpCodec, SdpMedia, SdpSession, check_media_sections, parse_sdp, write_sdp
from .sender import RtpSender, SendEncoding, random_ssrc
from .stats import InboundStreamStats, OutboundStreamStats, PeerConnectionStats
from .transceiver import Direction, Transceiver
from .twcc import TransportCcGenerator

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CODECS",
    "Codec",
    "ConnectionState",
    "Direction",
    "InboundStreamStats",
    "MediaKind",
    "OutboundStreamStats",
    "PeerConnection",
    "PeerConnectionConfig",
    "PeerConnectionStats",
    "RtpReceiver",
    "RtpSender",
    "SdpType",
    "SendEncoding",
    "SignalingState",
    "Transceiver",
]

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
    #: Seconds between automatic SR/RR reports.
    rtcp_report_interval: float = 1.0
    #: Seconds between transport-wide CC feedback packets (0 disables).
    transport_cc_interval: float = 0.05
    #: CNAME written into SDP a=ssrc lines and RTCP SDES.
    cname: str | None = None


def _invoke(owner: PeerConnection | None, callback: Callable[..., object] | None, *args: object) -> None:
    """Call a user callback; schedule it if it returns an awaitable; never raise."""
    tasks = owner._callback_tasks if owner is not None else None
    invoke_callback(tasks, "callback", callback, callback, *args)


# Candidate lines looked at per remote description: unbundled offers repeat
# candidates per m-line, but nothing legitimate comes near this.
_MAX_SDP_CANDIDATE_LINES = 256
# Descriptions longer than this (~1 ms of parsing; a few browser m-lines) are parsed in a worker thread.
_PARSE_IN_THREAD_CHARS = 16 * 1024
# Codecs one answered m-line lists; our codec lists are a handful, profiles included.
_MAX_ANSWER_CODECS = 16
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
        self._session_id = str(secrets.randbits(62))
        self._session_version = 0
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
        self._remote_candidates_seen: set[str] = set()
        self._candidate_limit_logged = False
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
        self._pt_allocation: dict[tuple[str, int, int | None, str], int] = {}
        self._ext_allocation: dict[str, int] = {}

        self._transport = BundleTransport(
            config.ice_servers,
            loopback_only=config.loopback_only,
            on_rtp=self._router.on_rtp,
            on_rtcp=self._router.on_rtcp,
            on_failure=self._on_transport_failure,
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
        outbound: list[OutboundStreamStats] = []
        inbound: list[InboundStreamStats] = []
        for transceiver in self._transceivers:
            sender = transceiver.sender
            rids = {e.ssrc: e.rid or None for e in sender._encodings}
            for ssrc, send in sender.streams.items():
                if send.packets:
                    outbound.append(
                        OutboundStreamStats(
                            transceiver.mid,
                            ssrc,
                            rids.get(ssrc),
                            send.packets,
                            send.octets,
                            send.rtt,
                            send.fraction_lost,
                            send.packets_lost,
                        )
                    )
            receiver = transceiver.receiver
            for ssrc, recv in receiver.streams.items():
                extended = recv.cycles + recv.max_seq
                expected = extended - recv.base_seq + 1
                inbound.append(
                    InboundStreamStats(
                        transceiver.mid,
                        ssrc,
                        receiver.ssrc_rids.get(ssrc),
                        recv.received,
                        max(0, expected - recv.received),
                        extended,
                        recv.jitter / recv.clock_rate if recv.clock_rate else 0.0,
                    )
                )
        return PeerConnectionStats(
            self._state,
            outbound,
            inbound,
            self._router.malformed_rtp,
            self._router.malformed_rtcp,
            self._router.unroutable_rtp,
            self.srtp_errors,
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
            self._send_srtp,
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
        _invoke(self, self.on_data_channel, wrapper)

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
        session = self._base_session()
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
            if mid in self._foreign_mlines or (mid in by_mid and by_mid[mid]._rejected_negotiated)
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
                session.media.append(self._application_media(mid, "actpass"))
                continue
            offered_transceiver = by_mid.get(mid)
            if offered_transceiver is not None:
                session.media.append(self._offer_media(offered_transceiver))
            elif mid in self._foreign_mlines:
                session.media.append(self._rejected_media(self._foreign_mlines[mid]))
        self._finish_session(session)
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
        session = self._base_session()
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
                    session.media.append(self._rejected_media(m))
                else:
                    session.media.append(self._application_media(m.mid or "", our_setup, m))
                continue
            transceiver = by_mid.get(m.mid or "")
            if transceiver is None or m.rejected or m.kind not in ("audio", "video"):
                if transceiver is not None:
                    transceiver._reject()
                session.media.append(self._rejected_media(m))
                continue
            media = self._answer_media(m, transceiver, our_setup)
            if media.rejected:
                transceiver._reject()
            session.media.append(media)
        self._finish_session(session)
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
        transport_parameters = self._validate_remote(session)
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
        await self._add_sdp_candidates(session)
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
        if not await self._add_remote_candidate_line(candidate.candidate):
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

    def _base_session(self) -> SdpSession:
        self._session_version += 1
        return SdpSession(
            session_id=self._session_id,
            session_version=self._session_version,
            extmap_allow_mixed=True,
        )

    def _transport_attrs(self, media: SdpMedia, setup: str) -> None:
        # Read straight from the ICE connection: once per m-line, a parameters object each time adds up.
        media.ice_ufrag = self._transport.local_username
        media.ice_pwd = self._transport.local_password
        media.ice_options = "trickle"
        media.fingerprints.extend(self._transport.fingerprints)
        media.setup = setup

    def _finish_session(self, session: SdpSession) -> None:
        session.bundle = [m.mid for m in session.media if not m.rejected and m.mid is not None]
        first = next((m for m in session.media if not m.rejected), None)
        if first is not None:
            candidates = self._transport.local_candidates()
            first.candidates = [c.sdp for c in candidates]
            first.end_of_candidates = True
            if candidates:
                first.connection_address = candidates[0].host
                first.port = candidates[0].port

    def _application_media(self, mid: str, setup: str, offered: SdpMedia | None = None) -> SdpMedia:
        protocol = offered.protocol if offered is not None else "UDP/DTLS/SCTP"
        formats = offered.formats if offered is not None else ["webrtc-datachannel"]
        media = SdpMedia(kind="application", port=9, protocol=protocol, formats=list(formats), mid=mid)
        self._transport_attrs(media, setup)
        media.sctp_port = 5000
        media.max_message_size = SCTP_MAX_MESSAGE_SIZE
        return media

    def _rejected_media(self, offered: SdpMedia) -> SdpMedia:
        return SdpMedia(
            kind=offered.kind,
            port=0,
            protocol=offered.protocol,
            formats=list(offered.formats) or ["0"],
            mid=offered.mid,
        )

    def _allocate_pt(self, codec: Codec) -> int:
        key = codec_key(codec)
        pt = self._pt_allocation.get(key)
        if pt is None:
            used = set(self._pt_allocation.values())
            preferred = 111 if codec.name.lower() == "opus" else 96
            pt = preferred
            while pt in used or pt > 127:
                pt = pt + 1 if pt < 127 else 96
            self._pt_allocation[key] = pt
        return pt

    def _local_codecs(self, transceiver: Transceiver) -> list[Codec]:
        source = transceiver._preferred_codecs
        if source is None:
            source = [c for c in self._config.codecs if c.kind == transceiver.kind]
        return list(source)

    def _local_extensions(self, kind: str) -> list[str]:
        return [uri for uri in self._config.header_extensions if kind == "video" or uri not in VIDEO_ONLY_EXTENSIONS]

    def _offer_media(self, transceiver: Transceiver) -> SdpMedia:
        assert transceiver.mid is not None
        if transceiver.stopped:
            return SdpMedia(
                kind=transceiver.kind,
                port=0,
                protocol="UDP/TLS/RTP/SAVPF",
                formats=[str(c.payload_type) for c in transceiver.parameters.codecs] or ["0"],
                mid=transceiver.mid,
            )
        media = SdpMedia(kind=transceiver.kind, port=9, protocol="UDP/TLS/RTP/SAVPF", formats=[], mid=transceiver.mid)
        # Like libwebrtc, every offer says actpass; an established DTLS role is
        # kept whatever a later answer says.
        self._transport_attrs(media, "actpass")
        media.rtcp_mux = True
        media.rtcp_rsize = True
        media.direction = transceiver.direction
        if transceiver.current_direction is not None and transceiver.parameters.codecs:
            # Renegotiation keeps what was agreed (payload types and ids).
            codecs = list(transceiver.parameters.codecs)
            extmap = dict(transceiver.parameters.extmap)
        else:
            codecs = []
            for codec in self._local_codecs(transceiver):
                pt = codec.payload_type if codec.payload_type is not None else self._allocate_pt(codec)
                codecs.append(dataclasses.replace(codec, payload_type=pt))
            extmap = {}
            for uri in self._local_extensions(transceiver.kind):
                ext_id = self._ext_allocation.get(uri)
                if ext_id is None:
                    ext_id = len(self._ext_allocation) + 1
                    self._ext_allocation[uri] = ext_id
                extmap[uri] = ext_id
            transceiver.parameters.codecs = codecs
            transceiver.parameters.extmap = extmap
        media.codecs = [self._to_sdp_codec(c) for c in codecs]
        media.formats = [str(c.payload_type) for c in codecs]
        media.extmaps = dict(extmap)
        self._write_send_identity(media, transceiver, offering=True)
        return media

    @staticmethod
    def _to_sdp_codec(codec: Codec) -> SdpCodec:
        assert codec.payload_type is not None
        return SdpCodec(
            payload_type=codec.payload_type,
            name=codec.name,
            clock_rate=codec.clock_rate,
            channels=codec.channels,
            fmtp=codec.fmtp,
            rtcp_feedback=list(codec.rtcp_feedback),
        )

    def _write_send_identity(self, media: SdpMedia, transceiver: Transceiver, *, offering: bool) -> None:
        if not transceiver._sends():
            return
        media.msid = (transceiver.stream_id, transceiver.track_id)
        sender = transceiver.sender
        if sender.simulcast and offering:
            media.rids = [(e.rid, "send") for e in sender._encodings]
            media.simulcast = ("send", [e.rid for e in sender._encodings])
            return
        ssrc = sender.ssrc
        media.ssrcs[ssrc] = {
            "cname": self._cname,
            "msid": f"{transceiver.stream_id} {transceiver.track_id}",
        }

    def _match_codec(self, offered: SdpCodec, kind: str, local: dict[str, list[Codec]]) -> Codec | None:
        """Our codec for an offered one; ``local`` maps lower-cased names to our codecs."""
        same_name = local.get(offered.name.lower())
        if not same_name:
            return None  # the common case for a foreign codec: one dict lookup
        name = offered.name.lower()
        params = offered.fmtp_params()
        for codec in same_name:
            if codec.clock_rate != offered.clock_rate:
                continue
            if name == "opus" and (offered.channels or 1) != (codec.channels or 1):
                continue
            if name == "h264" and h264_packetization_mode(params) != "1":
                continue
            feedback = tuple(fb for fb in offered.rtcp_feedback if fb in SUPPORTED_FEEDBACK)
            return Codec(
                mime_type=f"{kind}/{codec.name}",
                clock_rate=offered.clock_rate,
                channels=offered.channels,
                fmtp=offered.fmtp,
                payload_type=offered.payload_type,
                rtcp_feedback=feedback,
            )
        return None

    def _answer_media(self, offered: SdpMedia, transceiver: Transceiver, setup: str) -> SdpMedia:
        kind: MediaKind = "video" if offered.kind == "video" else "audio"
        local: dict[str, list[Codec]] = {}
        for codec in self._local_codecs(transceiver):
            if codec.name.lower() not in REJECTED_CODECS:
                local.setdefault(codec.name.lower(), []).append(codec)
        codecs: list[Codec] = []
        for offered_codec in offered.codecs:
            match = self._match_codec(offered_codec, kind, local)
            if match is not None:
                codecs.append(match)
                if len(codecs) >= _MAX_ANSWER_CODECS:
                    break  # an offer repeating one codec cannot make the answer long
        if not codecs:
            transceiver.parameters.codecs = []
            transceiver.current_direction = None
            return self._rejected_media(offered)
        accepted_ext = set(self._config.header_extensions)
        extmap = {uri: ext_id for uri, ext_id in offered.extmaps.items() if uri in accepted_ext}
        transceiver.parameters.codecs = codecs
        transceiver.parameters.extmap = extmap
        remote_sends = offered.direction in (None, "sendrecv", "sendonly")
        remote_receives = offered.direction in (None, "sendrecv", "recvonly")
        we_send = remote_receives and transceiver._sends()
        we_receive = remote_sends and transceiver._receives()
        direction: Direction = (
            "sendrecv"
            if we_send and we_receive
            else "sendonly"
            if we_send
            else "recvonly"
            if we_receive
            else "inactive"
        )
        transceiver.current_direction = direction
        media = SdpMedia(
            kind=offered.kind,
            port=9,
            protocol=offered.protocol,
            formats=[str(c.payload_type) for c in codecs],
            mid=offered.mid,
        )
        self._transport_attrs(media, setup)
        media.rtcp_mux = True
        media.rtcp_rsize = offered.rtcp_rsize
        media.direction = direction
        media.codecs = [self._to_sdp_codec(c) for c in codecs]
        media.extmaps = dict(extmap)
        send_rids = [rid for rid, d in offered.rids if d == "send"]
        if we_receive and send_rids:
            order = offered.simulcast[1] if offered.simulcast and offered.simulcast[0] == "send" else send_rids
            media.rids = [(rid, "recv") for rid in send_rids]
            media.simulcast = ("recv", [rid for rid in order if rid in send_rids])
        if we_send:
            self._write_send_identity(media, transceiver, offering=False)
        return media

    # --- applying remote descriptions --------------------------------------------

    def _validate_remote(self, session: SdpSession) -> tuple[tuple[str, str, bool], list[tuple[str, str]]] | None:
        """Check a remote description; return its ICE and DTLS parameters (None if all rejected)."""
        mids = [m.mid for m in session.media if m.mid is not None]
        if len(mids) != len(set(mids)):
            raise ValueError(f"SDP: unique a=mid values expected, got {mids}")
        live = [m for m in session.media if not m.rejected]
        for m in live:
            if m.kind in ("audio", "video") and m.mid is None:
                raise ValueError(f"SDP: a=mid expected on every m-line, got none on m={m.kind}")
        # Everything is bundled on one transport: the first live m-line's ICE
        # and DTLS parameters are the ones that count (others may omit them).
        if live:
            ufrag, pwd = session.media_ice(live[0])
            if not ufrag or not pwd:
                raise ValueError(f"SDP: a=ice-ufrag and a=ice-pwd expected for m-line mid={live[0].mid!r}, got none")
            if not session.media_fingerprints(live[0]):
                raise ValueError(f"SDP: a=fingerprint expected for m-line mid={live[0].mid!r}, got none")
        if live:
            first = live[0]
            ufrag, pwd = session.media_ice(first)
            assert ufrag is not None and pwd is not None
            fingerprints = list(session.media_fingerprints(first))
            if self._remote_ice is not None and self._remote_ice[0] != ufrag:
                raise ValueError(
                    f"SDP: ICE restart is not supported (ufrag {self._remote_ice[0]!r} expected, got {ufrag!r})"
                )
            return (ufrag, pwd, session.ice_lite), fingerprints
        return None

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
                        self._send_srtp,
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
                transceiver._reject()
                continue
            self._apply_remote_media(transceiver, m)
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
                transceiver._reject()
                continue
            codecs: list[Codec] = []
            offered = {c.payload_type: c for c in transceiver.parameters.codecs}
            for sdp_codec in m.codecs:
                mine = offered.get(sdp_codec.payload_type)
                if mine is None or sdp_codec.name.lower() in REJECTED_CODECS:
                    continue
                codecs.append(
                    Codec(
                        mime_type=f"{transceiver.kind}/{sdp_codec.name}",
                        clock_rate=sdp_codec.clock_rate,
                        channels=sdp_codec.channels,
                        fmtp=sdp_codec.fmtp or mine.fmtp,
                        payload_type=sdp_codec.payload_type,
                        rtcp_feedback=tuple(f for f in sdp_codec.rtcp_feedback if f in SUPPORTED_FEEDBACK),
                    )
                )
            transceiver.parameters.codecs = codecs
            transceiver.parameters.extmap = {
                uri: ext_id for uri, ext_id in m.extmaps.items() if transceiver.parameters.extmap.get(uri) == ext_id
            }
            remote = m.direction or "sendrecv"
            transceiver.current_direction = {
                "sendrecv": "sendrecv",
                "sendonly": "recvonly",
                "recvonly": "sendonly",
                "inactive": "inactive",
            }[remote]  # type: ignore[assignment]
            self._apply_remote_media(transceiver, m)

    def _apply_remote_media(self, transceiver: Transceiver, m: SdpMedia) -> None:
        if m.msid is not None:
            transceiver.remote_stream_id, transceiver.remote_track_id = m.msid
        else:
            for attrs in m.ssrcs.values():
                msid = attrs.get("msid")
                if msid:
                    parts = msid.split()
                    transceiver.remote_stream_id = parts[0]
                    transceiver.remote_track_id = parts[1] if len(parts) > 1 else ""
                    break
        receiver = transceiver.receiver
        receiver.remote_rids = [rid for rid, d in m.rids if d == "send"]
        if not receiver.remote_rids:
            for ssrc in m.ssrcs:
                receiver.ssrc_rids.setdefault(ssrc, None)
        transceiver.remote_sends = (m.direction or "sendrecv") in ("sendrecv", "sendonly")

    def _fire_tracks(self) -> None:
        for transceiver in self._transceivers:
            remote_sends = transceiver.remote_sends
            receiving = remote_sends and transceiver._receives()
            if receiving and not transceiver._track_fired:
                transceiver._track_fired = True
                _invoke(self, self.on_track, transceiver)
            elif not receiving:
                transceiver._track_fired = False

    async def _add_sdp_candidates(self, session: SdpSession) -> None:
        lines = [line for m in session.media if not m.rejected for line in m.candidates]
        if len(lines) > _MAX_SDP_CANDIDATE_LINES:
            logger.warning(
                "remote description carries %d candidate lines; only the first %d are looked at",
                len(lines),
                _MAX_SDP_CANDIDATE_LINES,
            )
            del lines[_MAX_SDP_CANDIDATE_LINES:]
        for line in lines:
            try:
                if not await self._add_remote_candidate_line(line):
                    break  # full: the rest would be refused too
            except ValueError:
                logger.debug("ignoring malformed SDP candidate %r", line)

    async def _add_remote_candidate_line(self, line: str) -> bool:
        """Add one candidate line; False when it is new but the connection holds its maximum."""
        text = line.strip()
        if text.startswith("a="):
            text = text[2:]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if text in self._remote_candidates_seen:
            return True
        if len(self._remote_candidates_seen) >= MAX_REMOTE_CANDIDATES:
            # A peer flooding candidates would make ICE check every pair; refused
            # before parsing so a flood costs a set lookup per candidate.
            if not self._candidate_limit_logged:
                self._candidate_limit_logged = True
                logger.warning("refusing remote ICE candidates beyond %d", MAX_REMOTE_CANDIDATES)
            return False
        candidate = self._transport.parse_candidate(text)
        if candidate.component != 1 or candidate.transport.lower() != "udp":
            return True  # rtcp-mux and UDP only
        if self._config.loopback_only and candidate.host != "127.0.0.1":
            return True  # loopback-only connections never reach other addresses
        self._remote_candidates_seen.add(text)
        await self._transport.add_remote_candidate(candidate)
        return True

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
            _invoke(self, self.on_ice_candidate, init)

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
                self._tasks.append(asyncio.ensure_future(run_feedback(generator, self._send_srtp)))
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
        _invoke(self, self.on_connection_state_change, state)

    def _on_transport_failure(self) -> None:
        if not self._closed:
            self._set_state("failed")

    # --- packet I/O ---------------------------------------------------------------------

    def _send_srtp(self, packet: bytes | bytearray, rtcp: bool) -> bool:
        return self._transport.send(packet, rtcp)

    def _update_routes(self) -> None:
        self._router.update(self._transceivers)
        for generator in self._feedback:
            generator.negotiated(self._transceivers)

    def _call(self, callback: Callable[..., object] | None, *args: object) -> None:
        _invoke(self, callback, *args)
