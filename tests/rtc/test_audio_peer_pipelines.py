"""The audio publish and receive pipelines over two real loopback PeerConnections (no server):
audio level on every packet, mute as silence suppression with a marked restart, DTX, and the
codec running off the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from kitewire.engine import AudioPublishPipeline, AudioReceivePipeline
from kitewire.media.opus import OpusConcealingDecoder, OpusDecoder, OpusEncoder
from kitewire.transport import PeerConnection, PeerConnectionConfig, RtpHeader
from kitewire.transport.rtp import URI_AUDIO_LEVEL, decode_audio_level

from audio_signal import dominant_frequency, sine

pytestmark = pytest.mark.asyncio


@dataclass
class Link:
    publisher: AudioPublishPipeline
    receiver: AudioReceivePipeline
    level_id: int
    packets: list[RtpHeader] = field(default_factory=list)
    pcm: list[bytes] = field(default_factory=list)


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    sender_pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    receiver_pc = PeerConnection(PeerConnectionConfig(loopback_only=True))
    transceiver = sender_pc.add_transceiver("audio", "sendonly", stream_id="stream", track_id="track")
    await receiver_pc.set_remote_description(await sender_pc.create_offer(), "offer")
    await sender_pc.set_remote_description(await receiver_pc.create_answer(), "answer")
    await asyncio.gather(sender_pc.wait_connected(10), receiver_pc.wait_connected(10))
    rtp_receiver = receiver_pc.transceivers[0].receiver
    publisher = AudioPublishPipeline(transceiver.sender, num_channels=1, dtx=True)
    receiver = AudioReceivePipeline(rtp_receiver)
    level_id = rtp_receiver.header_extensions[URI_AUDIO_LEVEL]
    made = Link(publisher, receiver, level_id)
    pipeline_on_rtp = rtp_receiver.on_rtp
    assert pipeline_on_rtp is not None

    def spy(packet: bytes, header: RtpHeader) -> None:
        made.packets.append(header)
        pipeline_on_rtp(packet, header)

    rtp_receiver.on_rtp = spy
    receiver.on_audio = lambda pcm, rate, channels, samples, ts: made.pcm.append(pcm)
    try:
        yield made
    finally:
        await publisher.close()
        await receiver.close()
        await sender_pc.close()
        await receiver_pc.close()


async def feed(publisher: AudioPublishPipeline, samples: np.ndarray, rate: int = 48_000) -> None:
    """Offer ``samples`` in real time, 10 ms at a time, stamped with their place on a playout
    schedule that starts now (as an AudioSource plays out)."""
    step = rate // 100
    start = time.monotonic()
    start_us = time.time_ns() // 1000
    for index, offset in enumerate(range(0, len(samples) - step + 1, step)):
        publisher.on_audio(samples[offset : offset + step].tobytes(), rate, 1, step, start_us + index * 10_000)
        await asyncio.sleep(max(0.0, start + (index + 1) * 0.01 - time.monotonic()))


async def test_every_packet_carries_its_audio_level(link: Link) -> None:
    await feed(link.publisher, sine(440, 1.0, amplitude=0.1))
    await asyncio.sleep(0.3)
    assert len(link.packets) >= 45
    levels = [decode_audio_level(header.extensions[link.level_id]) for header in link.packets]
    # 0.1 of full scale is -23 dBov (a sine's RMS is 3 dB under its peak); the codec's
    # start-up frame is quieter
    assert sorted(level for level, _ in levels)[len(levels) // 2] == 23
    assert all(voice for level, voice in levels if level < 40)
    assert b"".join(link.pcm), "nothing was decoded"


async def test_mute_sends_nothing_and_the_restart_is_marked_after_the_pause(link: Link) -> None:
    await feed(link.publisher, sine(440, 0.4))
    link.publisher.muted = True
    sent = link.publisher.packets_sent
    await feed(link.publisher, sine(440, 0.4))
    assert link.publisher.packets_sent == sent
    link.publisher.muted = False
    await feed(link.publisher, sine(440, 0.4))
    await asyncio.sleep(0.3)
    restart = next(i for i, h in enumerate(link.packets) if i > 0 and h.marker)
    before, after = link.packets[restart - 1], link.packets[restart]
    # the RTP clock jumped over the muted 0.4 s instead of pretending it did not happen
    assert (after.timestamp - before.timestamp) % (1 << 32) >= 0.35 * 48_000
    assert (after.sequence_number - before.sequence_number) % (1 << 16) == 1


async def test_dtx_suppresses_silence_and_the_receiver_plays_it_as_silence(link: Link) -> None:
    await feed(link.publisher, sine(440, 0.3))
    await feed(link.publisher, np.zeros(48_000, dtype=np.int16))
    await feed(link.publisher, sine(440, 0.3))
    await asyncio.sleep(0.3)
    # 1.6 s is 80 frames; most of the silent second was not sent
    assert len(link.packets) < 60
    decoded = np.frombuffer(b"".join(link.pcm), dtype=np.int16)
    # ... but the receiver heard about as much audio as was played (the pause filled with silence)
    assert len(decoded) / 2 >= 1.4 * 48_000


async def test_the_codec_runs_off_the_event_loop(link: Link, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, set[int]] = {"encode": set(), "decode": set()}
    encode, decode, native_decode = OpusEncoder.encode, OpusDecoder.decode, OpusConcealingDecoder.decode

    def spy_encode(self: OpusEncoder, pcm: bytes) -> list[bytes]:
        threads["encode"].add(threading.get_ident())
        return encode(self, pcm)

    def spy_decode(self: OpusDecoder, packet: bytes) -> bytes:
        threads["decode"].add(threading.get_ident())
        return decode(self, packet)

    def spy_native_decode(self: OpusConcealingDecoder, packet: bytes) -> bytes:
        threads["decode"].add(threading.get_ident())
        return native_decode(self, packet)

    monkeypatch.setattr(OpusEncoder, "encode", spy_encode)
    monkeypatch.setattr(OpusDecoder, "decode", spy_decode)
    monkeypatch.setattr(OpusConcealingDecoder, "decode", spy_native_decode)
    await feed(link.publisher, sine(440, 0.3))
    await asyncio.sleep(0.2)
    assert threads["encode"] and threads["decode"]
    assert threading.get_ident() not in threads["encode"] | threads["decode"]


async def test_audio_at_another_rate_is_resampled_before_encoding(link: Link) -> None:
    rate = 16_000
    await feed(link.publisher, sine(440, 1.0, rate), rate)
    await asyncio.sleep(0.3)
    decoded = np.frombuffer(b"".join(link.pcm), dtype=np.int16).reshape(-1, 2)[:, 0]
    # a second at 16 kHz went out as a second at 48 kHz, still at 440 Hz (plus up to 0.2 s the
    # receiver conceals after the last packet)
    assert 0.9 * 48_000 <= len(decoded) <= 1.25 * 48_000
    assert dominant_frequency(decoded[4800:], 48_000) == pytest.approx(440, abs=2)
