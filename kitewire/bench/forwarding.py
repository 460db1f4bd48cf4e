"""Micro-benchmark of the SFU's per-packet work, without sockets or SRTP.

Prints microseconds per packet for each step of forwarding one VP8 packet to
one subscriber (the steps ``DownTrack.forward`` takes: map seq/ts, rewrite
the picture id into a new descriptor, join a prebuilt header with the
payload, remember it for NACKs), next to an anchor (copying the packet's bytes) so figures from
different machines can be compared. Run: ``python -m kitewire.bench.forwarding``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from kitewire.media.keyframe import is_keyframe
from kitewire.media.packet_history import PacketHistory
from kitewire.media.vp8_descriptor import read_vp8_descriptor
from kitewire.server.forwarder import (
    PaddingSequenceMap,
    RtpRewriter,
)
from kitewire.transport.rtp import RtpHeaderTemplate, build_rtp_packet, parse_rtp_header

__all__ = ["main", "run_benchmark"]


def _vp8_packet(seq: int, picture_id: int, keyframe: bool) -> bytes:
    descriptor = bytes([0x90, 0x80, 0x80 | (picture_id >> 8), picture_id & 0xFF, 0x00 if keyframe else 0x01])
    payload = descriptor + bytes(1100)
    return build_rtp_packet(
        payload_type=96,
        sequence_number=seq,
        timestamp=seq * 3000,
        ssrc=0x1234,
        payload=payload,
        marker=True,
        extensions={4: b"1"},
    )


def _time_per_call(fn: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        fn(index)
    return (time.perf_counter() - start) / count * 1e6


def run_benchmark(count: int = 50_000) -> list[tuple[str, float]]:
    """(step, microseconds per packet) for each forwarding step and the anchor."""
    packets = [_vp8_packet(i & 0xFFFF, i & 0x7FFF, i % 300 == 0) for i in range(1000)]
    rewriter = RtpRewriter("video/VP8")
    rewriter.target_layer = 0
    cache = PacketHistory()
    headers = [parse_rtp_header(p) for p in packets]

    def anchor(i: int) -> object:
        return bytes(bytearray(packets[i % 1000]))

    def parse(i: int) -> object:
        return parse_rtp_header(packets[i % 1000])

    def keyframe(i: int) -> object:
        header = headers[i % 1000]
        return is_keyframe("video/VP8", packets[i % 1000][header.payload_offset : header.payload_offset + 64])

    padding = PaddingSequenceMap()

    def compact(i: int) -> object:
        # Once per incoming packet: take padding probes out of the sequence space.
        return padding.map(i & 0xFFFF, False)

    def rewrite(i: int) -> object:
        # The descriptor is parsed once per incoming packet, the rest per downtrack.
        header = headers[i % 1000]
        payload = memoryview(packets[i % 1000])[header.payload_offset : header.payload_end]
        desc = read_vp8_descriptor(payload)
        seq = (header.sequence_number + (i // 1000) * 1000) & 0xFFFF
        mapped = rewriter.map_packet(0, seq, header.timestamp, payload, desc, i / 30)
        if mapped is not None and desc is not None and desc.end:
            return rewriter.picture_id_prefix(desc, bytes(payload[: desc.end]))
        return mapped

    # The outgoing header (SSRC and a mid extension) is built once per downtrack.
    template = RtpHeaderTemplate(payload_type=96, ssrc=0x9999, fixed={3: b"\x01"})

    def build(i: int) -> object:
        header = headers[i % 1000]
        packet = packets[i % 1000]
        rest = memoryview(packet)[header.payload_offset + 4 : header.payload_end]
        return template.packet(i & 0xFFFF, header.timestamp, True, (b"\x90\x80\x81\x02", rest))

    def remember(i: int) -> object:
        cache.add(i & 0xFFFF, packets[i % 1000], i / 1000)
        return None

    results = [("anchor: copy a 1.1 kB packet", _time_per_call(anchor, count))]
    for name, fn in (
        ("parse RTP header", parse),
        ("padding probe filter", compact),
        ("keyframe check", keyframe),
        ("rewrite seq/ts/picture id", rewrite),
        ("build outgoing packet", build),
        ("NACK cache insert", remember),
    ):
        results.append((name, _time_per_call(fn, count)))
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.forwarding", description=__doc__)
    parser.add_argument("--packets", type=int, default=50_000, help="packets per step (default 50000)")
    args = parser.parse_args(argv)
    if args.packets <= 0:
        parser.error(f"--packets: expected a positive count, got {args.packets}")
    results = run_benchmark(args.packets)
    anchor = results[0][1]
    print(f"{'step':<32} {'us/packet':>10} {'x anchor':>9}")
    for name, micros in results:
        print(f"{name:<32} {micros:>10.2f} {micros / anchor:>9.1f}")
    total = sum(m for _, m in results[1:])
    print(f"{'forwarding steps, total':<32} {total:>10.2f} {total / anchor:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
