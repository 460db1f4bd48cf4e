"""Microseconds per RtpSender.send_rtp (SRTP protect + sendto) for 1200-byte
RTP packets, beside a bare socket.sendto of the same size as the anchor.

Two kitewire PeerConnections are connected over loopback; the receiving side
counts what arrives so the figure is for packets that really went out. The
receive path (SRTP unprotect + header parse + routing + callback, from the
socket callback on) is timed too, beside a bare socket.recvfrom.

    python -m kitewire.bench.rtp_send [--packets 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

from kitewire.transport import PeerConnection, PeerConnectionConfig, RtpHeader, Transceiver
from kitewire.transport.rtp import build_rtp_packet


async def connected_sender() -> tuple[PeerConnection, PeerConnection, Transceiver, list[int], list[float]]:
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
    receive_seconds = [0.0]
    handler = answerer._transport.ice_connection._srtp_handler
    assert handler is not None

    def timed(data: bytes) -> None:
        start = time.perf_counter()
        handler(data)
        receive_seconds[0] += time.perf_counter() - start

    answerer._transport.ice_connection._srtp_handler = timed
    return offerer, answerer, sending, received, receive_seconds


def bare_socket(count: int, size: int) -> tuple[float, float]:
    """(us per sendto, us per recvfrom) on plain loopback UDP sockets."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = receiver.getsockname()
    payload = b"\x80" + bytes(size - 1)
    send_total = receive_total = 0.0
    try:
        for _ in range(0, count, 100):
            start = time.perf_counter()
            for _ in range(100):
                sender.sendto(payload, address)
            middle = time.perf_counter()
            for _ in range(100):
                receiver.recvfrom(2048)
            receive_total += time.perf_counter() - middle
            send_total += middle - start
        rounds = (count + 99) // 100 * 100
        return send_total / rounds * 1e6, receive_total / rounds * 1e6
    finally:
        sender.close()
        receiver.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()
    offerer, answerer, sending, received, receive_seconds = await connected_sender()
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
        send_anchor, receive_anchor = bare_socket(args.packets, args.size)
        per_received = receive_seconds[0] / max(received[0], 1) * 1e6
        print(f"packets: {len(packets)} of {args.size} bytes, received by the peer: {received[0]}")
        print(f"{'send_rtp (SRTP protect + sendto)':52s} {per_packet:8.2f} us/packet")
        print(f"{'anchor: bare socket.sendto':52s} {send_anchor:8.2f} us/packet")
        print(f"{'receive (unprotect + parse + route + callback)':52s} {per_received:8.2f} us/packet")
        print(f"{'anchor: bare socket.recvfrom':52s} {receive_anchor:8.2f} us/packet")
    finally:
        await offerer.close()
        await answerer.close()


if __name__ == "__main__":
    asyncio.run(main())
