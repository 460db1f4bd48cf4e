"""RTCP feedback through the server, with kitewire-transport clients:
NACKs answered from the downtrack's cache, PLIs forwarded to the publisher."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from kitewire.server import Server
from kitewire.server import simclient as loadtest
from kitewire.signal import create_token

pytestmark = pytest.mark.timeout(60)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    loadtest.add_arguments(parser)
    return parser.parse_args(["--width", "320", "--height", "240", "--bitrate", "300000"])


@dataclass
class Link:
    """A kitewire-transport publisher and subscriber in one room of the server."""

    publisher: loadtest.Publisher
    subscriber: loadtest.Subscriber
    run: asyncio.Task[None] | None = None

    def start(self, seconds: float) -> asyncio.Task[None]:
        """Let the publisher send its clip for ``seconds``; the task is cancelled on leaving the link."""
        self.run = asyncio.get_running_loop().create_task(self.publisher.run(time.monotonic() + seconds))
        return self.run


@contextlib.asynccontextmanager
async def linked(server: Server, room: str) -> AsyncIterator[Link]:
    """``sub`` and ``pub`` (a 320x240 VP8 clip) joined to ``room``; everything is closed on exit."""
    args = _args()
    clip = await asyncio.get_running_loop().run_in_executor(
        None, loadtest.encode_clip, "VP8", 320, 240, 30.0, 300_000, 60
    )
    tasks: list[asyncio.Task[None]] = []
    subscriber = await loadtest._start_subscriber(
        server.url, create_token("devkey", "secret", identity="sub", room=room), tasks
    )
    publisher = await loadtest._start_publisher(
        server.url, create_token("devkey", "secret", identity="pub", room=room), args, clip, tasks
    )
    link = Link(publisher, subscriber)
    try:
        yield link
    finally:
        if link.run is not None:
            link.run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.run
        for task in tasks:
            task.cancel()
        for client in (publisher.client, subscriber.client):
            await client.close()
        for pc in (publisher.pc, subscriber.pc):
            await pc.close()


async def test_nack_is_answered_and_pli_reaches_publisher(server: Server) -> None:
    async with linked(server, "fb") as link:
        publisher, subscriber = link.publisher, link.subscriber
        link.start(20)
        for _ in range(100):
            if sum(subscriber.frames.values()) > 30:
                break
            await asyncio.sleep(0.1)
        assert sum(subscriber.frames.values()) > 30, subscriber.frames
        transceiver = subscriber.transceivers[0]
        ssrc, seq = next(reversed(subscriber.arrivals))
        downtrack = next(iter(server.rooms.rooms["fb"].participants["sub"].subscriptions.values()))
        # Loopback loses nothing, and SRTP replay protection drops a second copy of a
        # packet the receiver has, so the retransmission is observed at the sender.
        transceiver.receiver.send_nack(ssrc, [seq, (seq - 1) & 0xFFFF, (seq - 5000) & 0xFFFF])
        for _ in range(50):
            if downtrack.retransmissions >= 2:
                break
            await asyncio.sleep(0.05)
        assert downtrack.retransmissions == 2, "NACKed packets were not retransmitted from the cache"
        assert downtrack.nacks_unanswered == 1  # too old for the cache

        await asyncio.sleep(0.6)  # past the server's keyframe-request rate limit
        before = publisher.keyframe_requests
        transceiver.receiver.request_keyframe(ssrc)
        for _ in range(50):
            if publisher.keyframe_requests > before:
                break
            await asyncio.sleep(0.05)
        assert publisher.keyframe_requests > before, "PLI was not forwarded to the publisher"


async def test_participant_whose_media_connection_fails_is_removed(server: Server) -> None:
    from kitewire.signal import connect
    from livekit.protocol import models as pb_models

    watcher, _ = await connect(
        server.url, create_token("devkey", "secret", identity="watcher", room="fail", can_subscribe=False), legacy=True
    )
    tasks: list[asyncio.Task[None]] = []
    subscriber = await loadtest._start_subscriber(
        server.url, create_token("devkey", "secret", identity="doomed", room="fail"), tasks
    )
    try:
        participant = server.rooms.rooms["fail"].participants["doomed"]
        for _ in range(100):
            if participant.subscriber_pc is not None and participant.subscriber_pc.connection_state == "connected":
                break
            await asyncio.sleep(0.05)
        assert participant.subscriber_pc is not None and participant.subscriber_pc.connection_state == "connected"
        await subscriber.pc.close()  # media goes away; the signal socket stays open
        deadline = time.monotonic() + 10
        while True:
            message = await watcher.recv(timeout=max(0.1, deadline - time.monotonic()))
            assert message is not None
            if message.WhichOneof("message") != "update":
                continue
            info = message.update.participants[0]
            if info.identity == "doomed" and info.state == pb_models.ParticipantInfo.DISCONNECTED:
                break
        assert participant.closed and "ICE" in participant.close_reason
        assert "doomed" not in server.rooms.rooms["fail"].participants
    finally:
        for task in tasks:
            task.cancel()
        await subscriber.client.close()
        await watcher.close()


async def test_uplink_loss_is_nacked_and_repaired(server: Server) -> None:
    async with linked(server, "loss") as link:
        publisher, subscriber = link.publisher, link.subscriber
        publisher.drop_every = 10  # 10% of packets never leave the publisher the first time
        run = link.start(3)
        await run
        await asyncio.sleep(0.5)
        assert publisher.dropped >= 5
        # The last drop may have no later packet to reveal it before the run ends.
        assert publisher.retransmitted >= publisher.dropped - 1, "the server did not NACK the missing packets"
        track = next(iter(server.rooms.rooms["loss"].participants["pub"].published.values()))
        assert track.nacks_sent > 0
        # Every packet reached the subscriber in the end: no holes in its sequence numbers.
        seqs = sorted(seq for (_, seq) in subscriber.arrivals)
        span = seqs[-1] - seqs[0] + 1
        assert span < 60000  # no wrap inside this short run
        missing = span - len(seqs)
        assert missing <= 2, f"{missing} packets never arrived"


async def test_padding_probes_are_dropped_and_sequence_numbers_stay_contiguous(server: Server) -> None:
    from kitewire.transport import RtpHeader
    from kitewire.transport.rtp import parse_rtp_header

    async with linked(server, "pad") as link:
        publisher, subscriber = link.publisher, link.subscriber
        publisher.padding_every = 2  # two probes after every other media packet: more padding than media
        publisher.drop_every = 7  # and uplink loss, so retransmissions arrive late between probes
        received: dict[int, bytes] = {}  # outgoing seq -> payload, as the subscriber got it
        empty_packets = 0
        run = link.start(3)
        for _ in range(100):
            if subscriber.transceivers:
                break
            await asyncio.sleep(0.02)
        assert subscriber.transceivers
        receiver = subscriber.transceivers[0].receiver
        counting = receiver.on_rtp
        assert counting is not None

        def record(packet: bytes, header: RtpHeader) -> None:
            nonlocal empty_packets
            counting(packet, header)
            if header.payload_offset >= header.payload_end:
                empty_packets += 1
            received[header.sequence_number] = packet[header.payload_offset : header.payload_end]

        receiver.on_rtp = record
        await run
        await asyncio.sleep(0.3)  # late repairs land; the cache keeps packets 1.5 s
        track = next(iter(server.rooms.rooms["pad"].participants["pub"].published.values()))
        downtrack = next(iter(server.rooms.rooms["pad"].participants["sub"].subscriptions.values()))
        assert publisher.padding_sent > 100 and publisher.dropped >= 5
        assert track.padding_dropped >= publisher.padding_sent - 2, (track.padding_dropped, publisher.padding_sent)
        assert empty_packets == 0, "padding-only packets reached the subscriber"
        # The holes the probes left are closed: apart from the lost packets the
        # server is still repairing at the very end, the subscriber's numbers are gap-free.
        seqs = sorted(seq for (_, seq) in subscriber.arrivals)
        span = seqs[-1] - seqs[0] + 1
        assert span < 60000
        assert span - len(seqs) <= 2, f"{span - len(seqs)} sequence numbers never arrived"
        # A subscriber's NACK finds the very packet it got under that number.
        now = time.monotonic()
        for seq, payload in list(received.items())[-20:]:
            cached = downtrack.cache.get(seq, now)
            assert cached is not None
            header = parse_rtp_header(cached)
            assert header.sequence_number == seq
            assert cached[header.payload_offset : header.payload_end] == payload
        ssrc, last = next(reversed(subscriber.arrivals))
        before = downtrack.retransmissions
        receiver.send_nack(ssrc, [last, (last - 1) & 0xFFFF])
        for _ in range(50):
            if downtrack.retransmissions >= before + 2:
                break
            await asyncio.sleep(0.05)
        assert downtrack.retransmissions == before + 2
