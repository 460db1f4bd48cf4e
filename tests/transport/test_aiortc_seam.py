"""Contract tests for the aiortc/aioice private parts kitewire.transport.aiortc_seam relies on.

One test per private: if an aiortc or aioice release renames or reshapes one,
the test naming it fails instead of a connection misbehaving later.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import aioice
import pytest
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from kitewire.transport import PeerConnection
from kitewire.transport.aiortc_seam import EXPECTED_VERSIONS, BundleTransport, check_version
from transport_helpers import negotiate


def test_versions_outside_the_checked_series_are_refused_with_the_versions_named() -> None:
    check_version("aiortc", EXPECTED_VERSIONS["aiortc"] + ".0")
    check_version("aioice", EXPECTED_VERSIONS["aioice"] + ".7")
    with pytest.raises(ImportError, match=r"needs aiortc 1\.16\.x .* got aiortc 1\.17\.0"):
        check_version("aiortc", "1.17.0")
    with pytest.raises(ImportError, match=r"got aioice 0\.130"):
        check_version("aioice", "0.130")


def test_ice_gatherer_connection_is_a_replaceable_aioice_connection() -> None:
    gatherer = RTCIceGatherer()
    assert isinstance(gatherer._connection, aioice.Connection)
    replacement = aioice.Connection(ice_controlling=False)
    gatherer._connection = replacement
    assert RTCIceTransport(gatherer).iceGatherer._connection is replacement


def test_connection_local_candidate_fields_and_component_gathering() -> None:
    connection = aioice.Connection(ice_controlling=False)
    assert connection._local_candidates == []
    assert connection._local_candidates_start is False
    assert connection._local_candidates_end is False
    parameters = inspect.signature(connection.get_component_candidates).parameters
    assert {"component", "addresses"} <= set(parameters)
    assert inspect.iscoroutinefunction(connection.get_component_candidates)


def test_connection_data_received_takes_data_and_component() -> None:
    assert list(inspect.signature(aioice.Connection.data_received).parameters) == ["self", "data", "component"]


def test_dtls_transport_role_setter_and_srtp_sessions() -> None:
    gatherer = RTCIceGatherer()
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    assert dtls._tx_srtp is None and dtls._rx_srtp is None
    dtls._set_role("client")
    dtls._set_role("server")
    assert dtls.state == "new"


def test_dtls_transport_rtp_and_rtcp_handlers_are_coroutines_we_can_override() -> None:
    rtp: Callable[..., object] = RTCDtlsTransport._handle_rtp_data
    rtcp: Callable[..., object] = RTCDtlsTransport._handle_rtcp_data
    assert inspect.iscoroutinefunction(rtp) and inspect.iscoroutinefunction(rtcp)
    assert list(inspect.signature(rtp).parameters) == ["self", "data", "arrival_time_ms"]
    assert list(inspect.signature(rtcp).parameters) == ["self", "data"]


async def test_protocols_nominated_pair_and_srtp_sessions_of_a_connected_transport(
    make_pc: Callable[..., PeerConnection],
) -> None:
    offerer, answerer = make_pc(), make_pc()
    offerer.add_transceiver("audio")
    await negotiate(offerer, answerer)
    await offerer.wait_connected(10)
    await answerer.wait_connected(10)
    transport: BundleTransport = offerer._transport
    connection = transport.ice_connection
    assert connection._protocols, "gathering opened no datagram endpoint"
    for protocol in connection._protocols:
        assert protocol.transport.get_extra_info("socket") is not None
    pair = connection._nominated[1]
    assert pair.remote_addr[0] == "127.0.0.1"
    assert callable(pair.protocol.transport.sendto)
    dtls = transport._dtls
    assert dtls.state == "connected"
    assert callable(dtls._tx_srtp.protect) and callable(dtls._tx_srtp.protect_rtcp)
    assert callable(dtls._rx_srtp.unprotect) and callable(dtls._rx_srtp.unprotect_rtcp)
    assert transport.role in ("client", "server")
    assert {transport.role, answerer._transport.role} == {"client", "server"}


async def test_stun_protocol_takes_its_connection_a_transport_and_a_local_candidate() -> None:
    from aioice.ice import StunProtocol

    connection = aioice.Connection(ice_controlling=False, local_username="0123456789abcdef")
    assert connection.local_username == "0123456789abcdef"
    protocol = StunProtocol(connection)
    assert protocol.receiver is connection
    assert list(inspect.signature(protocol.connection_made).parameters) == ["transport"]
    assert list(inspect.signature(protocol.datagram_received).parameters) == ["data", "addr"]
    assert list(inspect.signature(protocol.connection_lost).parameters) == ["exc"]
    assert "local_candidate" in StunProtocol.__annotations__
    assert connection._protocols == [] and isinstance(connection._use_ipv4, bool)
    assert isinstance(connection._use_ipv6, bool)


def test_host_addresses_and_candidate_helpers_keep_their_signatures() -> None:
    from aioice.candidate import candidate_foundation, candidate_priority
    from aioice.ice import get_host_addresses

    assert set(inspect.signature(get_host_addresses).parameters) == {"use_ipv4", "use_ipv6"}
    assert isinstance(candidate_foundation("host", "udp", "127.0.0.1"), str)
    assert candidate_priority(1, "host") > candidate_priority(1, "srflx")


async def test_a_muxed_connection_closes_through_its_shared_socket() -> None:
    from kitewire.transport.aiortc_seam import HostGathering, _GatheringConnection
    from kitewire.transport.udp_mux import UdpMux

    mux = UdpMux()
    await mux.start("127.0.0.1", 0)
    try:
        connection = _GatheringConnection(ice_controlling=False, local_username="muxedconnection1")
        connection._gathering = HostGathering(loopback_only=True, udp_mux=mux)
        await connection.gather_candidates()
        assert [(c.host, c.port) for c in connection.local_candidates] == [mux.address]
        assert mux.connections == 1
        await asyncio.wait_for(connection.close(), 5)
        assert mux.connections == 0
    finally:
        mux.close()
