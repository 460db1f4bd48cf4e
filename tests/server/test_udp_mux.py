"""rtc.udp_port: every participant's media over ONE UDP port, demultiplexed by ICE ufrag; rtc.port_range_*."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kitewire.server import Server, ServerConfig
from kitewire.transport.sdp import parse_sdp
from kitewire.transport.udp_mux import MAX_ADDRESSES_PER_CONNECTION, UdpMux, stun_username
from livekit import rtc

from futures import resolve_once
from polling import eventually, free_udp_port

from .conftest import make_token
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(180)


def _binding_request(username: str) -> bytes:
    value = username.encode()
    padded = value + b"\0" * (-len(value) % 4)
    attributes = struct.pack("!HH", 0x0006, len(value)) + padded
    return struct.pack("!HHI12s", 0x0001, len(attributes), 0x2112A442, b"t" * 12) + attributes


class _Sink:
    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.lost = False

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def test_stun_username_reads_binding_requests_only() -> None:
    assert stun_username(_binding_request("server:client")) == "server:client"
    assert stun_username(b"\x80" + bytes(40)) is None  # RTP
    assert stun_username(b"\x16\xfe\xfd" + bytes(40)) is None  # DTLS
    response = bytearray(_binding_request("a:b"))
    response[0:2] = b"\x01\x01"
    assert stun_username(bytes(response)) is None
    assert stun_username(_binding_request("a:b")[:-4]) is None  # attribute cut short


@given(st.binary(max_size=200))
def test_stun_username_never_raises_on_any_datagram(data: bytes) -> None:
    result = stun_username(data)
    assert result is None or isinstance(result, str)


async def test_the_mux_routes_by_ufrag_then_by_address_and_bounds_addresses() -> None:
    mux = UdpMux()
    await mux.start("127.0.0.1", 0)
    try:
        first, second = _Sink(), _Sink()
        muxed_first = mux.attach("ufragone", first)
        mux.attach("ufragtwo", second)
        with pytest.raises(ValueError, match="already attached"):
            mux.attach("ufragone", _Sink())
        mux.route(b"\x80rtp-before-any-check", ("127.0.0.9", 5000))
        assert mux.unclaimed == 1 and not first.datagrams
        mux.route(_binding_request("ufragone:remote"), ("127.0.0.9", 5000))
        mux.route(b"\x80rtp", ("127.0.0.9", 5000))
        mux.route(_binding_request("ufragtwo:remote"), ("127.0.0.9", 6000))
        mux.route(b"\x17dtls", ("127.0.0.9", 6000))
        assert [d for d, _ in first.datagrams[1:]] == [b"\x80rtp"]
        assert [d for d, _ in second.datagrams[1:]] == [b"\x17dtls"]
        for port in range(7000, 7000 + 3 * MAX_ADDRESSES_PER_CONNECTION):
            mux.route(_binding_request("ufragone:remote"), ("127.0.0.9", port))
        assert len(muxed_first.addresses) == MAX_ADDRESSES_PER_CONNECTION
        mux.route(b"\x80old", ("127.0.0.9", 5000))  # forgotten: the oldest addresses went first
        assert mux.unclaimed == 2
        muxed_first.close()
        await asyncio.sleep(0)
        assert first.lost and mux.connections == 1
        mux.route(_binding_request("ufragone:remote"), ("127.0.0.9", 5000))
        assert mux.unclaimed == 3
    finally:
        mux.close()


def _loopback_udp_sockets() -> set[int]:
    """Ports of UDP sockets bound to 127.0.0.1 in this network namespace."""
    ports = set()
    with open("/proc/net/udp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            local = line.split()[1]
            address, port = local.split(":")
            if address == "0100007F":
                ports.add(int(port, 16))
    return ports


def _server_candidates(server: Server) -> list[tuple[str, int]]:
    found = []
    for room in server.rooms.rooms.values():
        for participant in room.participants.values():
            for pc in (participant.publisher_pc, participant.subscriber_pc):
                if pc is None or pc.local_description is None:
                    continue
                for media in parse_sdp(pc.local_description).media[:1]:
                    for candidate in media.candidates:
                        fields = candidate.split()
                        found.append((fields[4], int(fields[5])))
    return found


async def _video_between_three(server: Server) -> dict[str, list[CounterReader]]:
    """alice and bob publish, carol watches both; returns each publisher's readers once frames flowed."""
    rooms: list[rtc.Room] = []
    publishers: list[CounterPublisher] = []
    readers: dict[str, list[CounterReader]] = {"alice": [], "bob": []}
    queues: list[asyncio.Queue[rtc.Track]] = []
    try:
        for identity in ("alice", "bob", "carol"):
            room = rtc.Room()
            rooms.append(room)
            queues.append(subscribed_tracks(room))
            await asyncio.wait_for(room.connect(server.url, make_token(identity, "mux")), 20)
        for room in rooms[:2]:
            publisher = CounterPublisher(room, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8, fps=15)
            publishers.append(publisher)
            await publisher.start()
        for room, queue in zip(rooms, queues):
            wanted = 2 if room is rooms[2] else 1
            for _ in range(wanted):
                track = await asyncio.wait_for(queue.get(), 30)
                publication_owner = next(
                    p.identity for p in room.remote_participants.values() if track.sid in p.track_publications
                )
                readers[publication_owner].append(CounterReader(track))
        all_readers = readers["alice"] + readers["bob"]
        assert await eventually(lambda: all(len(r.counters) >= 20 for r in all_readers), 60), [
            len(r.counters) for r in all_readers
        ]
        return readers
    finally:
        for reader in readers["alice"] + readers["bob"]:
            await reader.close()
        for publisher in publishers:
            await publisher.stop()
        for room in rooms:
            await room.disconnect()


async def test_video_for_several_participants_flows_over_one_udp_port() -> None:
    port = free_udp_port()
    before = _loopback_udp_sockets()
    async with Server(ServerConfig.dev(port=0, udp_port=port, empty_timeout=0.3)) as server:
        assert server.udp_mux is not None and server.udp_mux.port == port
        assert f"udp 127.0.0.1:{port} (every WebRTC connection)" in server.listening_addresses
        candidates: list[tuple[str, int]] = []
        connections: list[int] = []
        sockets: set[int] = set()

        async def inspect_while_streaming() -> None:
            assert await eventually(lambda: len(_server_candidates(server)) >= 3, 30)
            candidates.extend(_server_candidates(server))
            connections.append(server.udp_mux.connections if server.udp_mux else 0)
            sockets.update(_loopback_udp_sockets() - before)

        inspector = asyncio.get_running_loop().create_task(inspect_while_streaming())
        readers = await _video_between_three(server)
        await inspector
        delivered = server.udp_mux.delivered
    # Each of alice's and bob's tracks reached everyone else; every server PeerConnection sat on the one port.
    assert len(readers["alice"]) == 2 and len(readers["bob"]) == 2
    assert candidates and set(candidates) == {("127.0.0.1", port)}
    assert connections == [3]
    assert sockets == {port}, "the server opened UDP sockets besides the mux"
    assert delivered > 3 * 20


async def test_port_range_is_honoured() -> None:
    start = free_udp_port()
    start = min(start, 65535 - 20)
    config = ServerConfig.dev(port=0, empty_timeout=0.3, port_range_start=start, port_range_end=start + 20)
    async with Server(config) as server:
        room = rtc.Room()
        other = rtc.Room()
        try:
            await asyncio.wait_for(room.connect(server.url, make_token("a", "ranged")), 20)
            await asyncio.wait_for(other.connect(server.url, make_token("b", "ranged")), 20)
            assert await eventually(lambda: len(_server_candidates(server)) >= 2, 20)
            ports = [port for _, port in _server_candidates(server)]
        finally:
            await room.disconnect()
            await other.disconnect()
    assert len(set(ports)) == len(ports) >= 2
    assert all(start <= port <= start + 20 for port in ports), ports


async def test_kitewire_sdk_peers_share_the_port_too() -> None:
    """kitewire's own SDK (aioice on the client side) publishing to a kitewire viewer through the mux."""
    from kitewire import rtc as kw
    from kitewire.frames.pattern import make_pattern_frame
    from kitewire.signal import create_token

    port = free_udp_port()
    async with Server(ServerConfig.dev(port=0, udp_port=port, empty_timeout=0.3)) as server:
        publisher, viewer = kw.Room(), kw.Room()
        subscribed: asyncio.Future[kw.Track] = asyncio.get_running_loop().create_future()
        viewer.on("track_subscribed", lambda track, pub, p: resolve_once(subscribed, track))
        source = kw.VideoSource(320, 240)
        frames = 0
        try:
            await publisher.connect(server.url, create_token("devkey", "secret", identity="kw-pub", room="kwmux"))
            await viewer.connect(server.url, create_token("devkey", "secret", identity="kw-view", room="kwmux"))
            track = kw.LocalVideoTrack.create_video_track("pattern", source)
            await publisher.local_participant.publish_track(
                track, kw.TrackPublishOptions(source=kw.TrackSource.SOURCE_CAMERA)
            )

            async def feed() -> None:
                index = 0
                while True:
                    source.capture_frame(make_pattern_frame(index, 320, 240))
                    index += 1
                    await asyncio.sleep(1 / 30)

            async def count(stream: kw.VideoStream) -> None:
                nonlocal frames
                async for _ in stream:
                    frames += 1
                    if frames >= 30:
                        return

            feeder = asyncio.get_running_loop().create_task(feed())
            try:
                stream = kw.VideoStream(await asyncio.wait_for(subscribed, 20))
                await asyncio.wait_for(count(stream), 30)
                await stream.aclose()
            finally:
                feeder.cancel()
            candidates = _server_candidates(server)
            connections = server.udp_mux.connections if server.udp_mux else 0
        finally:
            await publisher.disconnect()
            await viewer.disconnect()
            await source.aclose()
    assert frames >= 30
    assert candidates and set(candidates) == {("127.0.0.1", port)}
    assert connections >= 2


@given(st.lists(st.tuples(st.binary(max_size=120), st.integers(1, 65535)), max_size=40))
def test_the_mux_never_raises_on_any_datagram(datagrams: list[tuple[bytes, int]]) -> None:
    async def run() -> tuple[int, int]:
        mux = UdpMux()
        await mux.start("127.0.0.1", 0)
        sink = _Sink()
        try:
            mux.attach("fuzzufrag", sink)
            for data, port in datagrams:
                mux.route(data, ("127.0.0.9", port))
            mux.route(_binding_request("fuzzufrag:x"), ("127.0.0.9", 1))
            return mux.delivered, len(sink.datagrams)
        finally:
            mux.close()

    delivered, received = asyncio.run(run())
    assert delivered == received >= 1
