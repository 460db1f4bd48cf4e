"""RTCP feedback through the server, with kitewire-transport clients:
NACKs answered from the downtrack's cache, PLIs forwarded to the publisher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from kitewire import loadtest
from kitewire.loadtest import participant as simulated
from kitewire.loadtest import replay
from kitewire.server import Server
from kitewire.signal import create_token
from kitewire.transport import RtpHeader, Transceiver

pytestmark = pytest.mark.timeout(60)


@dataclass
class Link:
    """A load-test publisher replaying a 360p VP8 loop and a load-test subscriber, in one room of the server."""

    publisher: simulated.SimulatedParticipant
    subscriber: simulated.SimulatedParticipant
    pacer: replay.Pacer
    #: How often each (ssrc, sequence number) reached the subscriber since :meth:`watch`; a retransmission shows as 2.
    arrivals: dict[tuple[int, int], int] = field(default_factory=dict)

    @property
    def replay(self) -> replay.LayerReplay:
        """The publisher's one layer."""
        return self.publisher.layers[0]

    async def watch(self) -> Transceiver:
        """Wait for the subscriber's m-line of the track and record what arrives on it from now on."""
        for _ in range(200):
            if self.subscriber.receivers:
                break
            await asyncio.sleep(0.05)
        transceiver = next(iter(self.subscriber.receivers.values()))
        counting = transceiver.receiver.on_rtp
        assert counting is not None

        def record(packet: bytes, header: RtpHeader) -> None:
            counting(packet, header)
            key = (header.ssrc, header.sequence_number)
            self.arrivals[key] = self.arrivals.get(key, 0) + 1

        transceiver.receiver.on_rtp = record
        return transceiver


def _token(identity: str, room: str) -> str:
    return create_token("devkey", "secret", identity=identity, room=room)


@contextlib.asynccontextmanager
async def linked(server: Server, room: str) -> AsyncIterator[Link]:
    """``sub`` joined to ``room`` and ``pub`` publishing (the replay starts at once); all closed on exit."""
    params = loadtest.LoadTestParams(url=server.url, resolution="360p", simulcast=False, loop_seconds=2)
    loops = await replay.encode_loops(params)
    pacer = replay.Pacer()
    subscriber = simulated.SimulatedParticipant("sub", "sub")
    publisher = simulated.SimulatedParticipant("pub", "pub")
    try:
        await subscriber.connect(server.url, _token("sub", room), subscribe=True, timeout=15)
        await publisher.connect(server.url, _token("pub", room), subscribe=False, timeout=15)
        await publisher.publish(loops, replay.layer_plans(params), False, pacer, 15.0)
        yield Link(publisher, subscriber, pacer)
    finally:
        await pacer.stop()
        await publisher.close()
        await subscriber.close()


async def test_nack_is_answered_and_pli_reaches_publisher(server: Server) -> None:
    async with linked(server, "fb") as link:
        transceiver = await link.watch()
        for _ in range(100):
            if len(link.arrivals) > 30:
                break
            await asyncio.sleep(0.1)
        assert len(link.arrivals) > 30, link.arrivals
        ssrc, seq = next(reversed(link.arrivals))
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
        before = link.replay.keyframe_requests
        transceiver.receiver.request_keyframe(ssrc)
        for _ in range(50):
            if link.replay.keyframe_requests > before:
                break
            await asyncio.sleep(0.05)
        assert link.replay.keyframe_requests > before, "PLI was not forwarded to the publisher"


async def _keyframe_requests_forwarded(link: Link, transceiver: Transceiver, ssrc: int, after: float) -> int:
    """Send the server a PLI, wait ``after`` seconds; how many keyframe requests reached the publisher meanwhile."""
    before = link.replay.keyframe_requests
    transceiver.receiver.request_keyframe(ssrc)
    await asyncio.sleep(after)
    return link.replay.keyframe_requests - before


async def test_a_keyframe_request_no_keyframe_answered_is_repeated_sooner(server: Server) -> None:
    async with linked(server, "kf") as link:
        transceiver = await link.watch()
        for _ in range(100):
            if len(link.arrivals) > 30:
                break
            await asyncio.sleep(0.1)
        ssrc = next(reversed(link.arrivals))[0]
        await asyncio.sleep(0.6)  # past the rate limit of the subscription's own first request
        # answered: the publisher restarts its loop with a keyframe, so a second
        # request inside the rate limit is the subscriber's problem, not the publisher's
        assert await _keyframe_requests_forwarded(link, transceiver, ssrc, 0.3) == 1
        assert await _keyframe_requests_forwarded(link, transceiver, ssrc, 0.1) == 0
        await asyncio.sleep(0.3)
        # unanswered (as if the PLI was lost on the uplink): asked again after 0.2 s, not 0.5 s.
        # The loop's own keyframe every 2 s answers too, so a try it falls into does not count.
        link.replay.answers_keyframe_requests = False
        for _ in range(5):
            await asyncio.sleep(0.6)
            keyframes = link.replay.keyframes_sent
            first = await _keyframe_requests_forwarded(link, transceiver, ssrc, 0.25)
            second = await _keyframe_requests_forwarded(link, transceiver, ssrc, 0.1)
            # and still never faster than that
            third = await _keyframe_requests_forwarded(link, transceiver, ssrc, 0.05)
            if link.replay.keyframes_sent == keyframes:
                assert (first, second, third) == (1, 1, 0)
                break
        else:
            raise AssertionError("every try had a keyframe from the loop in it")


async def test_participant_whose_media_connection_fails_is_removed(server: Server) -> None:
    from kitewire.signal import connect
    from livekit.protocol import models as pb_models

    watcher, _ = await connect(
        server.url, create_token("devkey", "secret", identity="watcher", room="fail", can_subscribe=False), legacy=True
    )
    subscriber = simulated.SimulatedParticipant("doomed", "doomed")
    try:
        await subscriber.connect(server.url, _token("doomed", "fail"), subscribe=True, timeout=15)
        participant = server.rooms.rooms["fail"].participants["doomed"]
        for _ in range(100):
            if participant.subscriber_pc is not None and participant.subscriber_pc.connection_state == "connected":
                break
            await asyncio.sleep(0.05)
        assert participant.subscriber_pc is not None and participant.subscriber_pc.connection_state == "connected"
        assert subscriber.wire is not None and subscriber.wire.subscriber is not None
        await subscriber.wire.subscriber.close()  # media goes away; the signal socket stays open
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
        await subscriber.close()
        await watcher.close()


async def test_uplink_loss_is_nacked_and_repaired(server: Server) -> None:
    async with linked(server, "loss") as link:
        await link.watch()
        replay = link.replay
        replay.drop_every = 10  # 10% of packets never leave the publisher the first time
        await asyncio.sleep(3)
        replay.drop_every = 0
        await asyncio.sleep(0.5)  # later packets reveal the last gaps; their repairs land
        await link.pacer.stop()
        assert replay.dropped >= 5
        assert replay.retransmitted >= replay.dropped, "the server did not NACK the missing packets"
        track = next(iter(server.rooms.rooms["loss"].participants["pub"].published.values()))
        assert track.nacks_sent > 0
        # Every packet reached the subscriber in the end: no holes in its sequence numbers.
        seqs = sorted(seq for (_, seq) in link.arrivals)
        span = seqs[-1] - seqs[0] + 1
        assert span < 60000  # no wrap inside this short run
        missing = span - len(seqs)
        assert missing <= 2, f"{missing} packets never arrived"


async def test_padding_probes_are_dropped_and_sequence_numbers_stay_contiguous(server: Server) -> None:
    from kitewire.transport.rtp import parse_rtp_header

    async with linked(server, "pad") as link:
        transceiver = await link.watch()
        replay = link.replay
        received: dict[int, bytes] = {}  # outgoing seq -> payload, as the subscriber got it
        empty_packets = 0
        receiver = transceiver.receiver
        counting = receiver.on_rtp
        assert counting is not None

        def record(packet: bytes, header: RtpHeader) -> None:
            nonlocal empty_packets
            counting(packet, header)
            if header.payload_offset >= header.payload_end:
                empty_packets += 1
            received[header.sequence_number] = packet[header.payload_offset : header.payload_end]

        receiver.on_rtp = record
        replay.padding_every = 2  # two probes after every other media packet: more padding than media
        replay.drop_every = 7  # and uplink loss, so retransmissions arrive late between probes
        await asyncio.sleep(3)
        replay.padding_every = replay.drop_every = 0
        await asyncio.sleep(0.3)  # late repairs land; the cache keeps packets 1.5 s
        await link.pacer.stop()
        track = next(iter(server.rooms.rooms["pad"].participants["pub"].published.values()))
        downtrack = next(iter(server.rooms.rooms["pad"].participants["sub"].subscriptions.values()))
        assert replay.padding_sent > 100 and replay.dropped >= 5
        assert track.padding_dropped >= replay.padding_sent - 2, (track.padding_dropped, replay.padding_sent)
        assert empty_packets == 0, "padding-only packets reached the subscriber"
        # The holes the probes left are closed: apart from the lost packets the
        # server is still repairing at the very end, the subscriber's numbers are gap-free.
        seqs = sorted(seq for (_, seq) in link.arrivals)
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
        ssrc, last = next(reversed(link.arrivals))
        before = downtrack.retransmissions
        receiver.send_nack(ssrc, [last, (last - 1) & 0xFFFF])
        for _ in range(50):
            if downtrack.retransmissions >= before + 2:
                break
            await asyncio.sleep(0.05)
        assert downtrack.retransmissions == before + 2
