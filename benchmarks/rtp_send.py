"""Microseconds per RtpSender.send_rtp (SRTP protect + sendto) for 1200-byte
RTP packets, beside a bare socket.sendto of the same size as the anchor.

Two kitewire PeerConnections are connected over loopback; the receiving side
counts what arrives so the figure is for packets that really went out.

    python benchmarks/rtp_send.py [--packets 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

from kitewire.transport import PeerConnection, PeerConnectionConfig, RtpHeader, Transceiver
from kitewire.transport.rtp import build_rtp_packet


async def connected_sender() -> tuple[PeerConnection, PeerConnection, Transceiver, list[int]]:
    offerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    answerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    sending = offerer.add_transceiver("video", "sendonly")
    received = [0]

    def on_track(transceiver: Transceiver) -> None:
        def on_rtp(data: bytes, header: RtpHeader) -> None:
            received[0] += 1

        transceiver.receiver.on_rtp = on_rtp

    answerer.on_track = on_track
    offer = await offerer.create_offer()
    await answerer.set_remote_description(offer, "offer")
    await offerer.set_remote_description(await answerer.create_answer(), "answer")
    await asyncio.gather(offerer.wait_connected(10), answerer.wait_connected(10))
    return offerer, answerer, sending, received


def bare_sendto(count: int, size: int) -> float:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = receiver.getsockname()
    payload = b"\x80" + bytes(size - 1)
    try:
        start = time.perf_counter()
        for _ in range(count):
            sender.sendto(payload, address)
        return (time.perf_counter() - start) / count * 1e6
    finally:
        sender.close()
        receiver.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()
    offerer, answerer, sending, received = await connected_sender()
    try:
        pt = sending.codecs[0].payload_type or 96
        ssrc = sending.sender.ssrc
        payload = bytes(args.size - 12)
        packets = [
            build_rtp_packet(payload_type=pt, sequence_number=i & 0xFFFF, timestamp=i * 90, ssrc=ssrc, payload=payload)
            for i in range(args.packets)
        ]
        send = sending.sender.send_rtp
        # Timed bursts; between them the (same-process) receiver drains its
        # socket, because asyncio reads one datagram per socket per loop turn.
        burst = 100
        elapsed = 0.0
        for start_index in range(0, len(packets), burst):
            chunk = packets[start_index : start_index + burst]
            start = time.perf_counter()
            for packet in chunk:
                send(packet)
            elapsed += time.perf_counter() - start
            deadline = time.monotonic() + 1.0
            while received[0] < start_index + len(chunk) and time.monotonic() < deadline:
                await asyncio.sleep(0)
        per_packet = elapsed / len(packets) * 1e6
        anchor = bare_sendto(args.packets, args.size)
        print(f"packets: {len(packets)} of {args.size} bytes, received by the peer: {received[0]}")
        print(f"{'send_rtp (SRTP protect + sendto)':40s} {per_packet:8.2f} us/packet")
        print(f"{'anchor: bare socket.sendto':40s} {anchor:8.2f} us/packet")
        print(f"{'ratio':40s} {per_packet / anchor:8.2f}x")
    finally:
        await offerer.close()
        await answerer.close()


if __name__ == "__main__":
    asyncio.run(main())
