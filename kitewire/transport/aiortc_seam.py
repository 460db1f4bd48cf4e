"""The seam to aiortc 1.16 and aioice 0.13: the only module of kitewire that imports them.

kitewire uses aiortc's ICE, DTLS-SRTP and SCTP machinery but not its RTP stack,
which takes a few of their private parts (each listed, with why, where it is
used; ``tests/transport/test_aiortc_seam.py`` holds a contract test per
private). Importing this module with other versions installed fails at once
with an ImportError naming the versions found and expected, instead of
misbehaving later.

:class:`BundleTransport` is the one ICE + DTLS (+ SCTP) transport a
:class:`~kitewire.transport.PeerConnection` carries every m-line on, speaking
in plain values (strings, tuples) so no aiortc type leaks out, except
:class:`RTCDataChannel`, which :class:`~kitewire.transport.DataChannel` wraps.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aioice
import aiortc
import pylibsrtp
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, get_host_addresses
from aiortc.rtcconfiguration import RTCIceServer
from aiortc.rtcdatachannel import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceCandidate, RTCIceGatherer, RTCIceParameters, RTCIceTransport, connection_kwargs
from aiortc.rtcsctptransport import RTCSctpCapabilities, RTCSctpTransport

from .ice import IceServer
from .udp_mux import UdpMux

__all__ = [
    "EXPECTED_VERSIONS",
    "SCTP_MAX_MESSAGE_SIZE",
    "BundleTransport",
    "DtlsRole",
    "LocalCandidate",
    "RTCDataChannel",
    "RemoteCandidate",
    "check_version",
]

logger = logging.getLogger(__name__)

#: The release series the private parts used here were checked against.
EXPECTED_VERSIONS: dict[str, str] = {"aiortc": "1.16", "aioice": "0.13"}


def check_version(package: str, installed: str) -> None:
    """ImportError unless ``installed`` is in the release series of :data:`EXPECTED_VERSIONS`."""
    expected = EXPECTED_VERSIONS[package]
    if installed != expected and not installed.startswith(expected + "."):
        raise ImportError(
            f"kitewire.transport needs {package} {expected}.x (it uses private parts of that release), "
            f"got {package} {installed}; install {package}=={expected}.*"
        )


for _package, _module in (("aiortc", aiortc), ("aioice", aioice)):
    check_version(_package, getattr(_module, "__version__", None) or importlib.metadata.version(_package))

DtlsRole = Literal["client", "server"]

#: The largest data channel message we accept (advertised in a=max-message-size).
SCTP_MAX_MESSAGE_SIZE: int = RTCSctpTransport.getCapabilities().maxMessageSize
# Room for a keyframe burst from several layers while the event loop is busy; aioice's default holds ~200 packets.
_RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024


class _FastPathConnection(Connection):
    """An aioice connection that hands SRTP/SRTCP datagrams straight to the
    transport once DTLS is up, instead of queueing them for aiortc's DTLS read
    loop: one function call per packet instead of a queue round trip and two
    coroutine switches. DTLS (and so SCTP) keeps the queued path.

    Private: overrides ``Connection.data_received(data, component)``, aioice's
    per-datagram entry point.
    """

    _srtp_handler: Callable[[bytes], None] | None = None

    def data_received(self, data: bytes, component: int) -> None:
        handler = self._srtp_handler
        # RFC 7983 demultiplexing: 128..191 is RTP/RTCP.
        if handler is not None and len(data) > 1 and 127 < data[0] < 192:
            handler(data)
            return
        super().data_received(data, component)


@dataclass(frozen=True)
class HostGathering:
    """How a connection gathers when aioice's own gathering is not used.

    ``loopback_only``: 127.0.0.1 only (aioice skips it). ``port_range``: bind
    each host candidate to a port in ``(start, end)``. ``udp_mux``: no socket
    of its own, one host candidate on the mux's shared port.
    """

    loopback_only: bool = False
    port_range: tuple[int, int] | None = None
    udp_mux: UdpMux | None = None

    @property
    def needed(self) -> bool:
        """Whether aioice's gathering must be replaced."""
        return self.loopback_only or self.port_range is not None or self.udp_mux is not None


class _GatheringConnection(_FastPathConnection):
    """A connection that gathers host candidates as its :class:`HostGathering` says, per instance.

    Patching aioice's gathering would affect every connection in the process;
    overriding it per instance does not. No STUN or TURN: these gather host
    candidates only.

    Private: ``_local_candidates``, ``_local_candidates_start`` and
    ``_local_candidates_end`` (what ``gather_candidates`` fills in),
    ``_protocols`` (the endpoints ``close`` closes), ``_use_ipv4``/``_use_ipv6``,
    ``StunProtocol(connection)`` with its ``local_candidate`` and
    ``connection_made(transport)``, and ``get_component_candidates(component, addresses)``.
    """

    #: Set per instance by BundleTransport (a class default for subclasses).
    _gathering = HostGathering()

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        gathering = self._gathering
        if gathering.loopback_only:
            addresses = ["127.0.0.1"]
        else:
            addresses = get_host_addresses(use_ipv4=self._use_ipv4, use_ipv6=self._use_ipv6)
        if gathering.udp_mux is not None:
            self._local_candidates += self._muxed_candidates(gathering.udp_mux, addresses)
        elif gathering.port_range is not None:
            self._local_candidates += await self._ranged_candidates(gathering.port_range, addresses)
        else:
            self._local_candidates += await self.get_component_candidates(component=1, addresses=addresses)
        self._local_candidates_end = True

    def _add_host(self, protocol: StunProtocol, host: str, port: int) -> Candidate:
        protocol.local_candidate = _host_candidate(host, port)
        self._protocols.append(protocol)
        return protocol.local_candidate

    def _muxed_candidates(self, mux: UdpMux, addresses: list[str]) -> list[Candidate]:
        protocol = StunProtocol(self)
        protocol.connection_made(mux.attach(str(self.local_username), protocol))
        bound_host, port = mux.address
        # A mux bound to one address is reached there; one bound to the wildcard on every host address.
        hosts = addresses if bound_host in ("0.0.0.0", "::") else [bound_host]
        return [self._add_host(protocol, hosts[0], port)] + [_host_candidate(host, port) for host in hosts[1:]]

    async def _ranged_candidates(self, port_range: tuple[int, int], addresses: list[str]) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        start, end = port_range
        candidates = []
        for host in addresses:
            ports = list(range(start, end + 1))
            offset = random.randrange(len(ports))
            for port in ports[offset:] + ports[:offset]:
                try:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(self), local_addr=(host, port)
                    )
                except OSError:
                    continue
                candidates.append(self._add_host(protocol, host, transport.get_extra_info("sockname")[1]))
                break
            else:
                raise OSError(f"ICE: no free UDP port on {host} in {start}-{end}")
        return candidates


def _host_candidate(host: str, port: int) -> Candidate:
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=1,
        transport="udp",
        priority=candidate_priority(1, "host"),
        host=host,
        port=port,
        type="host",
    )


class _LoopbackConnection(_GatheringConnection):
    """A connection gathering one host candidate on 127.0.0.1 (also swapped into aiortc's own peers by tests)."""

    _gathering = HostGathering(loopback_only=True)


class _RawDtlsTransport(RTCDtlsTransport):
    """aiortc's DTLS-SRTP transport with decrypted RTP/RTCP handed over raw.

    Private: overrides ``_handle_rtp_data(data, arrival_time_ms)`` and
    ``_handle_rtcp_data(data)``, where aiortc's read loop delivers what it decrypted.
    """

    def __init__(
        self,
        transport: RTCIceTransport,
        certificates: list[RTCCertificate],
        on_rtp: Callable[[bytes], None],
        on_rtcp: Callable[[bytes], None],
    ) -> None:
        super().__init__(transport, certificates)
        self._kitewire_on_rtp = on_rtp
        self._kitewire_on_rtcp = on_rtcp

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self._kitewire_on_rtp(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self._kitewire_on_rtcp(data)


@dataclass(frozen=True)
class LocalCandidate:
    """One gathered candidate: its SDP text (without "candidate:") and address."""

    sdp: str
    host: str
    port: int


@dataclass(frozen=True)
class RemoteCandidate:
    """A parsed remote candidate (see :meth:`BundleTransport.parse_candidate`)."""

    component: int
    transport: str
    host: str
    _candidate: Candidate


def _ice_servers_to_aiortc(servers: list[IceServer]) -> list[RTCIceServer]:
    out = []
    for server in servers:
        if not isinstance(server, IceServer):
            raise ValueError(f"IceServer expected in ice_servers, got {type(server).__name__}")
        out.append(RTCIceServer(urls=list(server.urls), username=server.username, credential=server.credential))
    return out


class BundleTransport:
    """One ICE + DTLS-SRTP transport, and the SCTP association of data channels on it.

    ``on_rtp`` / ``on_rtcp`` get every decrypted packet (on the event loop);
    ``on_failure`` is called when ICE or DTLS fails, or DTLS closes after
    having connected. ``srtp_errors`` counts packets failing authentication
    or replay checks.
    """

    def __init__(
        self,
        ice_servers: list[IceServer],
        *,
        loopback_only: bool,
        port_range: tuple[int, int] | None = None,
        udp_mux: UdpMux | None = None,
        on_rtp: Callable[[bytes], None],
        on_rtcp: Callable[[bytes], None],
        on_failure: Callable[[], None],
    ) -> None:
        aiortc_servers = _ice_servers_to_aiortc(ice_servers)
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._on_failure = on_failure
        self.srtp_errors = 0
        gatherer = RTCIceGatherer(iceServers=aiortc_servers)
        # Private: RTCIceGatherer._connection, swapped for ours before RTCIceTransport binds to it.
        gathering = HostGathering(loopback_only, port_range, udp_mux)
        if gathering.needed:
            # A long ufrag: connections on one mux are told apart by it (aioice's own has 4 characters).
            connection = _GatheringConnection(ice_controlling=False, local_username=secrets.token_hex(8))
            connection._gathering = gathering
            gatherer._connection = connection
        else:
            gatherer._connection = _FastPathConnection(ice_controlling=False, **connection_kwargs(aiortc_servers))
        self._gatherer = gatherer
        self.ice_connection: _FastPathConnection = gatherer._connection
        self._ice = RTCIceTransport(gatherer)
        certificate = RTCCertificate.generateCertificate()
        # Every m-line repeats the fingerprint; hashing the certificate once keeps offers and answers cheap.
        self.fingerprints: list[tuple[str, str]] = [
            (fp.algorithm, fp.value) for fp in certificate.getFingerprints() if fp.algorithm == "sha-256"
        ]
        self._dtls = _RawDtlsTransport(self._ice, [certificate], on_rtp, on_rtcp)
        self._dtls_connected = False
        self._role: DtlsRole | None = None
        self._sctp: RTCSctpTransport | None = None
        self._ice.on("statechange", self._on_ice_state_change)
        self._dtls.on("statechange", self._on_dtls_state_change)

    # --- ICE -------------------------------------------------------------------

    @property
    def local_username(self) -> str:
        """Our ICE ufrag."""
        return str(self.ice_connection.local_username)

    @property
    def local_password(self) -> str:
        """Our ICE password."""
        return str(self.ice_connection.local_password)

    @property
    def controlling(self) -> bool:
        """Whether we are the ICE controlling agent."""
        return bool(self.ice_connection.ice_controlling)

    @controlling.setter
    def controlling(self, value: bool) -> None:
        self.ice_connection.ice_controlling = value

    async def gather(self) -> None:
        """Gather local candidates (once; later calls return at once)."""
        if self._gatherer.state != "new":
            return
        await self._gatherer.gather()
        # Private: Connection._protocols, the datagram endpoints gathering opened (no public accessor).
        for protocol in self.ice_connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
                except OSError:
                    pass

    def local_candidates(self) -> list[LocalCandidate]:
        """The gathered candidates."""
        return [LocalCandidate(c.to_sdp(), c.host, c.port) for c in self.ice_connection.local_candidates]

    @staticmethod
    def parse_candidate(text: str) -> RemoteCandidate:
        """Parse an SDP candidate (without "a=" and "candidate:"); ValueError naming the format if malformed."""
        try:
            candidate = Candidate.from_sdp(text)
        except (ValueError, IndexError) as exc:
            raise ValueError(
                f"ICE candidate: 'candidate:<foundation> <component> <transport> ...' expected, got {text!r} ({exc})"
            ) from None
        return RemoteCandidate(candidate.component, candidate.transport, candidate.host, candidate)

    async def add_remote_candidate(self, candidate: RemoteCandidate | None) -> None:
        """Add a remote candidate (None: the remote has no more)."""
        if candidate is None:
            await self._ice.addRemoteCandidate(None)
            return
        c = candidate._candidate
        await self._ice.addRemoteCandidate(
            RTCIceCandidate(
                component=c.component,
                foundation=c.foundation,
                ip=c.host,
                port=c.port,
                priority=c.priority,
                protocol=c.transport,
                type=c.type,
                relatedAddress=c.related_address,
                relatedPort=c.related_port,
                tcpType=c.tcptype,
            )
        )

    # --- DTLS ------------------------------------------------------------------

    @property
    def role(self) -> DtlsRole | None:
        """The DTLS role set with :meth:`set_role` (None before)."""
        return self._role

    def set_role(self, role: DtlsRole) -> None:
        """Be the DTLS client or server (decided by the SDP a=setup exchange)."""
        # Private: RTCDtlsTransport._set_role; aiortc's own RTCPeerConnection sets it the same way.
        self._dtls._set_role(role)
        self._role = role

    async def start(self, ufrag: str, password: str, ice_lite: bool, fingerprints: list[tuple[str, str]]) -> bool:
        """Connect ICE, then DTLS; True once both are up (exceptions pass through)."""
        await self._ice.start(RTCIceParameters(usernameFragment=ufrag, password=password, iceLite=ice_lite))
        if self._ice.state != "completed":
            return False
        await self._dtls.start(
            RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint(algorithm=a, value=v) for a, v in fingerprints])
        )
        if self._dtls.state != "connected":
            return False
        self.ice_connection._srtp_handler = self._on_datagram
        return True

    def send(self, packet: bytes | bytearray, rtcp: bool) -> bool:
        """SRTP(C)-protect and send one packet now; False when not connected (or it could not be sent)."""
        # Private: RTCDtlsTransport._tx_srtp, the pylibsrtp session its handshake keyed.
        tx = self._dtls._tx_srtp
        if tx is None or not self._dtls_connected:
            return False
        # Private: Connection._nominated, the selected pair per component (aioice sends on it the same way).
        pair = self.ice_connection._nominated.get(1)
        if pair is None:
            return False
        try:
            data = tx.protect_rtcp(bytes(packet)) if rtcp else tx.protect(bytes(packet))
        except pylibsrtp.Error:
            return False
        try:
            pair.protocol.transport.sendto(data, pair.remote_addr)
        except OSError:
            return False
        return True

    def _on_datagram(self, data: bytes) -> None:
        # Private: RTCDtlsTransport._rx_srtp, the receiving pylibsrtp session.
        rx = self._dtls._rx_srtp
        if rx is None or not self._dtls_connected:
            return
        try:
            if 192 <= data[1] <= 223:
                self._on_rtcp(rx.unprotect_rtcp(data))
            else:
                self._on_rtp(rx.unprotect(data))
        except pylibsrtp.Error:
            self.srtp_errors += 1

    def _on_ice_state_change(self) -> None:
        if self._ice.state == "failed":
            self._on_failure()

    def _on_dtls_state_change(self) -> None:
        state = self._dtls.state
        was_connected, self._dtls_connected = self._dtls_connected, state == "connected"
        # "closed" after "connected": the remote ended DTLS (close_notify) or the transport died.
        if state == "failed" or (state == "closed" and was_connected):
            self._on_failure()

    # --- SCTP --------------------------------------------------------------------

    def ensure_sctp(self, on_data_channel: Callable[[RTCDataChannel], None]) -> None:
        """Create the SCTP association object (started by :meth:`start_sctp`)."""
        if self._sctp is None:
            self._sctp = RTCSctpTransport(self._dtls)
            self._sctp.on("datachannel", on_data_channel)

    @property
    def has_sctp(self) -> bool:
        """True once :meth:`ensure_sctp` was called."""
        return self._sctp is not None

    def create_data_channel(
        self, label: str, *, ordered: bool, max_retransmits: int | None, protocol: str
    ) -> RTCDataChannel:
        """A new channel on the association (after :meth:`ensure_sctp`)."""
        assert self._sctp is not None
        return RTCDataChannel(
            self._sctp,
            RTCDataChannelParameters(label=label, ordered=ordered, maxRetransmits=max_retransmits, protocol=protocol),
        )

    async def start_sctp(self, remote_port: int, remote_max_message_size: int) -> None:
        """Start the association over the connected DTLS transport."""
        assert self._sctp is not None
        await self._sctp.start(RTCSctpCapabilities(maxMessageSize=remote_max_message_size), remote_port)

    async def close(self) -> None:
        """Stop SCTP, DTLS and ICE (each failure only logged)."""
        for name, part in (("SCTP", self._sctp), ("DTLS", self._dtls), ("ICE", self._ice)):
            if part is None:
                continue
            try:
                await part.stop()
            except Exception:
                logger.debug("%s stop failed", name, exc_info=True)
