"""The packets a downtrack sends, byte for byte, on negotiated (not connected)
kitewire-transport PeerConnections: the prebuilt header templates must give
exactly what the sender's ``build_packet`` gives, padding probes must not pass."""

from __future__ import annotations

import contextlib
import itertools
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kitewire.server.downtrack import DownTrack
from kitewire.server.uptrack import PublishedTrack
from kitewire.transport import PeerConnection, PeerConnectionConfig, Transceiver
from kitewire.transport import rtp as rtp_ext
from kitewire.transport.rtp import parse_rtp_header
from livekit.protocol import models as pb_models

pytestmark = pytest.mark.timeout(30)


async def _negotiate(direction_offerer: Any) -> tuple[PeerConnection, PeerConnection, Transceiver, Transceiver]:
    offerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    answerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    local = offerer.add_transceiver("video", direction_offerer)
    remote: list[Transceiver] = []
    answerer.on_track = remote.append
    await answerer.set_remote_description(await offerer.create_offer(), "offer")
    await offerer.set_remote_description(await answerer.create_answer(), "answer")
    assert remote, "the answerer saw no m-line"
    return offerer, answerer, local, remote[0]


@pytest.fixture
async def links() -> AsyncIterator[tuple[Transceiver, Transceiver, Transceiver]]:
    """(publisher's sender, server's receiving m-line, server's sending m-line)."""
    pcs: list[PeerConnection] = []
    try:
        pub, srv_in, pub_tx, srv_rx = await _negotiate("sendonly")
        pcs += [pub, srv_in]
        srv_out, sub, srv_tx, _ = await _negotiate("sendonly")
        pcs += [srv_out, sub]
        yield pub_tx, srv_rx, srv_tx
    finally:
        for pc in pcs:
            with contextlib.suppress(Exception):
                await pc.close()


def _vp8(picture_id: int, keyframe: bool) -> bytes:
    return bytes([0x90, 0x80, 0x80 | (picture_id >> 8), picture_id & 0xFF, 0x00 if keyframe else 0x01]) + bytes(
        range(200)
    )


@pytest.mark.parametrize("subscriber_has_orientation", [True, False])
async def test_forwarded_packets_equal_what_build_packet_makes(
    links: tuple[Transceiver, Transceiver, Transceiver], subscriber_has_orientation: bool
) -> None:
    pub_tx, srv_rx, srv_tx = links
    if not subscriber_has_orientation:
        # A subscriber m-line without video-orientation: only some forwarded extensions go out.
        del srv_tx.parameters.extmap[rtp_ext.URI_VIDEO_ORIENTATION]
    track = PublishedTrack(None, pb_models.TrackInfo(sid="TR_test", type=pb_models.VIDEO), srv_rx)  # type: ignore[arg-type]
    down = DownTrack(track, None, srv_tx, is_ready=lambda _: True)  # type: ignore[arg-type]
    track.downtracks["sub"] = down
    sender = pub_tx.sender
    pt = pub_tx.codecs[0].payload_type
    assert pt is not None and pub_tx.codecs[0].mime_type.lower() == "video/vp8"
    abs_capture = rtp_ext.URI_ABS_CAPTURE_TIME
    orientation = rtp_ext.URI_VIDEO_ORIENTATION
    assert abs_capture in srv_tx.sender.header_extensions
    assert (orientation in srv_tx.sender.header_extensions) == subscriber_has_orientation
    # Packets with no forwarded extension, with one, with both, in two value
    # sizes (abs-capture-time with and without its clock offset), and probes.
    plans: list[tuple[dict[str, bytes] | None, bool]] = [
        (None, False),
        ({abs_capture: struct.pack("!Q", 0x0102030405060708)}, False),
        ({abs_capture: struct.pack("!Qq", 7, -3), orientation: b"\x01"}, False),
        ({orientation: b"\x03"}, False),
        (None, True),
        (None, True),
        ({abs_capture: struct.pack("!Q", 99)}, False),
    ] * 6
    seq, ts = 5000, 1000
    sent: list[tuple[dict[str, bytes] | None, bytes, bool]] = []
    deliver = srv_rx.receiver.on_rtp
    assert deliver is not None, "the track did not attach to its receiver"
    for index, (extensions, probe) in enumerate(plans):
        if probe:
            packet = bytearray(
                sender.build_packet(bytes(99) + bytes([100]), payload_type=pt, sequence_number=seq, timestamp=ts)
            )
            packet[0] |= 0x20
            payload = b""
        else:
            payload = _vp8(300 + len(sent), keyframe=index == 0)
            packet = bytearray(
                sender.build_packet(
                    payload,
                    payload_type=pt,
                    sequence_number=seq,
                    timestamp=ts,
                    marker=index % 2 == 0,
                    extensions=extensions,
                )
            )
        header = parse_rtp_header(bytes(packet))
        deliver(bytes(packet), header)  # as the transport delivers it
        if not probe:
            sent.append((extensions, payload, index % 2 == 0))
        seq += 1
        ts += 3000
    assert track.padding_dropped == sum(1 for _, probe in plans if probe)
    assert down.packets_sent == len(sent)
    out_seqs: list[int] = []
    first_seq = (down.rewriter._last_out_seq - len(sent) + 1) & 0xFFFF
    for n, (extensions, payload, marker) in enumerate(sent):
        out_seq = (first_seq + n) & 0xFFFF
        cached = down.cache.get(out_seq, time.monotonic())
        assert cached is not None, f"no packet sent as {out_seq}"
        header = parse_rtp_header(cached)
        out_payload = cached[header.payload_offset : header.payload_end]
        # Only the picture id changed in the payload...
        assert out_payload[:2] == payload[:2] and out_payload[4:] == payload[4:]
        # ... and the whole packet is what the sender itself would have built
        # (forwarded extensions in the server's order: orientation, capture time).
        if extensions is not None:
            extensions = {uri: extensions[uri] for uri in (orientation, abs_capture) if uri in extensions}
        expected = srv_tx.sender.build_packet(
            out_payload,
            payload_type=header.payload_type,
            sequence_number=out_seq,
            timestamp=header.timestamp,
            marker=marker,
            extensions=extensions,
        )
        assert cached == expected, f"packet {n} with {extensions} differs"
        out_seqs.append(header.sequence_number)
    # Picture ids continue one by one, and so do sequence numbers, probes or not.
    pids = [((p[2] & 0x7F) << 8) | p[3] for p in (parse_payload(down, s) for s in out_seqs)]
    assert all((b - a) % (1 << 15) == 1 for a, b in itertools.pairwise(pids))
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(out_seqs))


def parse_payload(down: DownTrack, seq: int) -> bytes:
    cached = down.cache.get(seq, time.monotonic())
    assert cached is not None
    header = parse_rtp_header(cached)
    return cached[header.payload_offset : header.payload_end]
