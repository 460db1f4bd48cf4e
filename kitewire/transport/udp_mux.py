"""One UDP port for every PeerConnection: datagrams demultiplexed by ICE ufrag, then by address.

A STUN binding request names its target in USERNAME (``<their ufrag>:<our
ufrag>`` seen from the sender, so the part before the colon is the receiving
agent's ufrag); the mux hands it to the connection registered under that
ufrag and remembers the sender's address for it. Every other datagram (STUN
responses, DTLS, SRTP) goes to the connection that address belongs to. This is
how LiveKit runs on one published UDP port (pion's UDPMux). Datagrams nobody
claims are dropped and counted. Each connection keeps at most
``MAX_ADDRESSES_PER_CONNECTION`` addresses (oldest forgotten), so checks from
many sources cannot grow the tables without bound.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from typing import Any, Protocol

__all__ = ["MAX_ADDRESSES_PER_CONNECTION", "MuxEndpoint", "MuxedSocket", "UdpMux", "stun_username"]

logger = logging.getLogger("kitewire.transport.udp_mux")

#: Remote addresses one connection may be reached from (a browser has a few candidates per interface).
MAX_ADDRESSES_PER_CONNECTION = 16

_STUN_MAGIC_COOKIE = 0x2112A442
_STUN_HEADER = struct.Struct("!HHI12s")
_STUN_ATTRIBUTE = struct.Struct("!HH")
_STUN_BINDING_REQUEST = 0x0001
_USERNAME = 0x0006
# Room for a keyframe burst from many publishers while the event loop is busy.
_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024

Address = tuple[str, int]


def stun_username(data: bytes) -> str | None:
    """USERNAME of a STUN binding request, or None when ``data`` is not one (or has none)."""
    if len(data) < 20 or data[0] > 1:
        return None
    message_type, length, cookie, _ = _STUN_HEADER.unpack_from(data)
    if message_type != _STUN_BINDING_REQUEST or cookie != _STUN_MAGIC_COOKIE or 20 + length > len(data):
        return None
    offset, end = 20, 20 + length
    while offset + 4 <= end:
        kind, size = _STUN_ATTRIBUTE.unpack_from(data, offset)
        offset += 4
        if offset + size > end:
            return None
        if kind == _USERNAME:
            try:
                return data[offset : offset + size].decode("utf-8")
            except UnicodeDecodeError:
                return None
        offset += (size + 3) & ~3
    return None


class MuxEndpoint(Protocol):
    """What a connection on the mux receives with (asyncio's datagram protocol methods)."""

    def datagram_received(self, data: bytes, addr: Address) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class MuxedSocket(asyncio.DatagramTransport):
    """One connection's view of the shared socket: an asyncio datagram transport sending from the shared port."""

    def __init__(self, mux: UdpMux, ufrag: str, endpoint: MuxEndpoint) -> None:
        super().__init__()
        self._mux = mux
        self.ufrag = ufrag
        self.endpoint = endpoint
        #: Addresses this connection was reached from, oldest first.
        self.addresses: collections.OrderedDict[Address, None] = collections.OrderedDict()
        self._closed = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send from the shared port (dropped once closed)."""
        if not self._closed:
            self._mux.sendto(data, addr)

    def abort(self) -> None:
        """Same as :meth:`close` (nothing is buffered)."""
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``sockname`` is the shared port's address; the socket itself is the mux's, so not given out."""
        if name == "sockname":
            return self._mux.address
        return default

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Leave the mux; the endpoint hears ``connection_lost`` soon after, as from asyncio."""
        if self._closed:
            return
        self._closed = True
        self._mux.detach(self)
        asyncio.get_running_loop().call_soon(self.endpoint.connection_lost, None)


class _MuxProtocol(asyncio.DatagramProtocol):
    def __init__(self, mux: UdpMux) -> None:
        self._mux = mux

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._mux.route(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp mux: %s", exc)


class UdpMux:
    """One UDP socket shared by every connection that attaches to it (see the module docstring).

    ``await start(host, port)`` binds; ``attach(ufrag, endpoint)`` gives a
    connection its :class:`MuxedSocket`; ``close()`` releases the port.
    """

    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._address: Address | None = None
        self._by_ufrag: dict[str, MuxedSocket] = {}
        self._by_address: dict[Address, MuxedSocket] = {}
        #: Datagrams from addresses no connection claimed.
        self.unclaimed = 0
        #: Datagrams delivered to connections.
        self.delivered = 0

    @property
    def address(self) -> Address:
        """The bound (host, port)."""
        if self._address is None:
            raise RuntimeError("udp mux not started")
        return self._address

    @property
    def port(self) -> int:
        """The bound port."""
        return self.address[1]

    @property
    def connections(self) -> int:
        """Connections attached now."""
        return len(self._by_ufrag)

    async def start(self, host: str, port: int) -> None:
        """Bind ``host:port`` (port 0 picks one); OSError when it is taken."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _MuxProtocol(self), local_addr=(host, port))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
            except OSError:
                pass
        name = transport.get_extra_info("sockname")
        self._transport = transport
        self._address = (name[0], name[1])

    def close(self) -> None:
        """Release the port; attached connections hear ``connection_lost``."""
        for muxed in list(self._by_ufrag.values()):
            muxed.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def attach(self, ufrag: str, endpoint: MuxEndpoint) -> MuxedSocket:
        """Register ``endpoint`` under its local ICE ``ufrag``; ValueError if the ufrag is taken or empty."""
        if self._transport is None:
            raise RuntimeError("udp mux not started")
        if not ufrag or ":" in ufrag:
            raise ValueError(f"udp mux: expected an ICE ufrag without ':', got {ufrag!r}")
        if ufrag in self._by_ufrag:
            raise ValueError(f"udp mux: ufrag {ufrag!r} is already attached")
        muxed = MuxedSocket(self, ufrag, endpoint)
        self._by_ufrag[ufrag] = muxed
        return muxed

    def detach(self, muxed: MuxedSocket) -> None:
        """Forget ``muxed`` and its addresses (``MuxedSocket.close`` calls this)."""
        if self._by_ufrag.get(muxed.ufrag) is muxed:
            del self._by_ufrag[muxed.ufrag]
        for addr in muxed.addresses:
            if self._by_address.get(addr) is muxed:
                del self._by_address[addr]
        muxed.addresses.clear()

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send ``data`` from the shared port."""
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def route(self, data: bytes, addr: Address) -> None:
        """Deliver one datagram: binding requests by the ufrag they name, the rest by address."""
        muxed: MuxedSocket | None = None
        username = stun_username(data)
        if username is not None:
            muxed = self._by_ufrag.get(username.split(":", 1)[0])
            if muxed is not None:
                self._learn(muxed, addr)
        if muxed is None:
            muxed = self._by_address.get(addr)
        if muxed is None:
            self.unclaimed += 1
            return
        self.delivered += 1
        muxed.endpoint.datagram_received(data, addr)

    def _learn(self, muxed: MuxedSocket, addr: Address) -> None:
        owner = self._by_address.get(addr)
        if owner is muxed:
            muxed.addresses.move_to_end(addr)
            return
        if owner is not None:
            # The address moved to another connection (a new session from the same port).
            owner.addresses.pop(addr, None)
        self._by_address[addr] = muxed
        muxed.addresses[addr] = None
        while len(muxed.addresses) > MAX_ADDRESSES_PER_CONNECTION:
            oldest, _ = muxed.addresses.popitem(last=False)
            if self._by_address.get(oldest) is muxed:
                del self._by_address[oldest]
