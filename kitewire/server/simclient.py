"""Simulated LiveKit clients for exercising the server: a light harness the
server's tests use (RTCP feedback, forwarding) and a quick load run
(``python -m kitewire.server.simclient``). The full ``kitewire load-test`` is
``kitewire/loadtest.py``.

Publishers replay a pre-encoded test-pattern clip (so the load measured is the
server's, not the encoder's); subscribers count what arrives without decoding.
Both speak the legacy ``/rtc`` form with two PeerConnections, built directly
from kitewire.signal and kitewire.transport. Without ``--url`` an embedded
``kitewire serve --dev`` is started in a child process and stopped at the end.
Counts and duration are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass, field

import av
import numpy as np
from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.media.codecs import VideoEncoder
from kitewire.media.keyframe import is_keyframe
from kitewire.signal.client import SignalClient, connect
from kitewire.signal.token import DEV_API_KEY, DEV_API_SECRET, create_token
from kitewire.transport import (
    IceCandidateInit,
    PeerConnection,
    PeerConnectionConfig,
    RtpHeader,
    Transceiver,
)

__all__ = ["add_arguments", "run"]

_MAX_CLIENTS = 64
_MAX_DURATION = 300.0
PUBLISHER = pb_rtc.SignalTarget.PUBLISHER
SUBSCRIBER = pb_rtc.SignalTarget.SUBSCRIBER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the quick load run."""
    parser.add_argument("--url", default=None, help="server URL (default: start an embedded server)")
    parser.add_argument("--api-key", default=DEV_API_KEY)
    parser.add_argument("--api-secret", default=DEV_API_SECRET)
    parser.add_argument("--room", default="load-test")
    parser.add_argument("--publishers", type=int, default=1, help=f"video publishers (1..{_MAX_CLIENTS})")
    parser.add_argument("--subscribers", type=int, default=4, help=f"subscribers (0..{_MAX_CLIENTS})")
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds of streaming (max {_MAX_DURATION:.0f})")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--bitrate", type=int, default=800_000)
    parser.add_argument("--codec", default="VP8", choices=["VP8", "H264"])


def _candidate_forwarder(client: SignalClient, target: int) -> object:
    def on_candidate(candidate: IceCandidateInit | None) -> None:
        if candidate is not None and candidate.candidate:
            asyncio.get_running_loop().create_task(client.send_trickle(candidate.to_json(), target))

    return on_candidate


def encode_clip(
    codec: str, width: int, height: int, fps: float, bitrate: int, frames: int
) -> list[tuple[bool, list[bytes]]]:
    """A moving test pattern, encoded once: (keyframe, RTP payloads) per frame."""
    encoder = VideoEncoder(codec, width, height, bitrate, fps)
    clip: list[tuple[bool, list[bytes]]] = []
    ys, xs = np.mgrid[0:height, 0:width]
    for index in range(frames):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[..., 0] = (xs + index * 8) % 256
        image[..., 1] = (ys + index * 4) % 256
        image[..., 2] = ((xs // 32 + ys // 32 + index) % 2) * 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        encoded = encoder.encode(frame, keyframe=index == 0, capture_time=index / fps)
        clip.append((encoded.keyframe, list(encoded)))
    return clip


# A padding-only RTP payload: 224 bytes, the last one saying how many.
_PADDING = bytes(223) + bytes([224])


@dataclass
class Publisher:
    """One simulated publisher replaying a clip on loop."""

    client: SignalClient
    pc: PeerConnection
    transceiver: Transceiver
    clip: list[tuple[bool, list[bytes]]]
    fps: float
    frames_sent: int = 0
    keyframe_requests: int = 0
    #: Leave out every n-th packet (0: none), to simulate loss on the uplink.
    drop_every: int = 0
    dropped: int = 0
    retransmitted: int = 0
    #: After every n-th media packet send a burst of two padding-only packets
    #: (0: never), as libwebrtc does for bandwidth probes when RTX is not negotiated.
    padding_every: int = 0
    padding_sent: int = 0
    _restart: bool = False
    _recent: dict[int, bytes] = field(default_factory=dict)

    async def run(self, until: float) -> None:
        sender = self.transceiver.sender
        codec = self.transceiver.codecs[0]
        assert codec.payload_type is not None
        sender.on_keyframe_request = self._on_keyframe_request
        sender.on_nack = self._on_nack
        seq = random.randrange(1 << 16)
        sent_packets = 0
        timestamp = random.randrange(1 << 32)
        step = int(90000 / self.fps)
        index = 0
        start = time.monotonic()
        while time.monotonic() < until:
            if self._restart:
                index, self._restart = 0, False
            _, payloads = self.clip[index % len(self.clip)]
            for position, payload in enumerate(payloads):
                packet = sender.build_packet(
                    payload,
                    payload_type=codec.payload_type,
                    sequence_number=seq,
                    timestamp=timestamp,
                    marker=position == len(payloads) - 1,
                )
                self._recent[seq] = packet
                if len(self._recent) > 1024:
                    del self._recent[next(iter(self._recent))]
                sent_packets += 1
                if self.drop_every and sent_packets % self.drop_every == 0:
                    self.dropped += 1
                else:
                    sender.send_rtp(packet)
                seq = (seq + 1) & 0xFFFF
                if self.padding_every and sent_packets % self.padding_every == 0:
                    for _ in range(2):
                        probe = bytearray(
                            sender.build_packet(
                                _PADDING, payload_type=codec.payload_type, sequence_number=seq, timestamp=timestamp
                            )
                        )
                        probe[0] |= 0x20  # P bit: the whole payload is padding
                        self._recent[seq] = bytes(probe)
                        sender.send_rtp(probe)
                        self.padding_sent += 1
                        seq = (seq + 1) & 0xFFFF
            timestamp = (timestamp + step) & 0xFFFFFFFF
            index += 1
            self.frames_sent += 1
            await asyncio.sleep(max(0.0, start + self.frames_sent / self.fps - time.monotonic()))

    def _on_nack(self, ssrc: int, lost: list[int]) -> None:
        for seq in lost:
            packet = self._recent.get(seq)
            if packet is not None:
                self.transceiver.sender.send_rtp(packet)
                self.retransmitted += 1

    def _on_keyframe_request(self, ssrc: int) -> None:
        self.keyframe_requests += 1
        self._restart = True


@dataclass
class Subscriber:
    """One simulated subscriber counting frames and bytes per track."""

    client: SignalClient
    pc: PeerConnection
    frames: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    keyframes: int = 0
    first_frame_at: float | None = None
    transceivers: list[Transceiver] = field(default_factory=list)
    #: How often each recent (ssrc, sequence number) arrived; a retransmission shows as 2.
    arrivals: dict[tuple[int, int], int] = field(default_factory=dict)

    def on_track(self, transceiver: Transceiver) -> None:
        name = transceiver.remote_track_id or transceiver.mid or "?"
        mime = transceiver.codecs[0].mime_type if transceiver.codecs else "video/VP8"
        self.frames.setdefault(name, 0)
        self.transceivers.append(transceiver)

        def on_rtp(packet: bytes, header: RtpHeader) -> None:
            self.bytes += len(packet)
            key = (header.ssrc, header.sequence_number)
            self.arrivals[key] = self.arrivals.get(key, 0) + 1
            if len(self.arrivals) > 4096:
                # Keep memory bounded: forget the oldest half.
                for old in list(self.arrivals)[:2048]:
                    del self.arrivals[old]
            if header.marker:
                self.frames[name] = self.frames.get(name, 0) + 1
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
            if is_keyframe(mime, packet[header.payload_offset : header.payload_offset + 64]):
                self.keyframes += 1

        transceiver.receiver.on_rtp = on_rtp


async def _pump(client: SignalClient, pc: PeerConnection, target_pc: dict[int, PeerConnection]) -> None:
    """Handle the server's signal messages for a simulated client."""
    async for message in client:
        kind = message.WhichOneof("message")
        if kind == "offer":
            sub = target_pc[SUBSCRIBER]
            await sub.set_remote_description(message.offer.sdp, "offer")
            answer = await sub.create_answer()
            await client.send_answer(answer, message.offer.id)
        elif kind == "answer":
            await target_pc[PUBLISHER].set_remote_description(message.answer.sdp, "answer")
        elif kind == "trickle":
            with contextlib.suppress(ValueError):
                candidate = IceCandidateInit.from_json(message.trickle.candidateInit)
                await target_pc[int(message.trickle.target)].add_ice_candidate(candidate)
        elif kind == "leave":
            return


async def _start_publisher(
    url: str,
    token: str,
    args: argparse.Namespace,
    clip: list[tuple[bool, list[bytes]]],
    tasks: list[asyncio.Task[None]],
) -> Publisher:
    client, _ = await connect(url, token, legacy=True)
    config = PeerConnectionConfig(loopback_only=True)
    pub_pc, sub_pc = PeerConnection(config), PeerConnection(PeerConnectionConfig(loopback_only=True))
    pub_pc.on_ice_candidate = _candidate_forwarder(client, PUBLISHER)  # type: ignore[assignment]
    sub_pc.on_ice_candidate = _candidate_forwarder(client, SUBSCRIBER)  # type: ignore[assignment]
    cid = f"load-{random.randrange(1 << 30)}"
    transceiver = pub_pc.add_transceiver("video", "sendonly", track_id=cid)
    request = pb_rtc.SignalRequest()
    request.add_track.cid = cid
    request.add_track.type = pb_models.VIDEO
    request.add_track.name = "load"
    request.add_track.width, request.add_track.height = args.width, args.height
    request.add_track.source = pb_models.CAMERA
    await client.send(request)
    tasks.append(asyncio.get_running_loop().create_task(_pump(client, pub_pc, {PUBLISHER: pub_pc, SUBSCRIBER: sub_pc})))
    offer = await pub_pc.create_offer()
    await client.send_offer(offer)
    await pub_pc.wait_connected(timeout=15)
    return Publisher(client, pub_pc, transceiver, clip, args.fps)


async def _start_subscriber(url: str, token: str, tasks: list[asyncio.Task[None]]) -> Subscriber:
    client, _ = await connect(url, token, legacy=True)
    pub_pc, sub_pc = (
        PeerConnection(PeerConnectionConfig(loopback_only=True)),
        PeerConnection(PeerConnectionConfig(loopback_only=True)),
    )
    sub_pc.on_ice_candidate = _candidate_forwarder(client, SUBSCRIBER)  # type: ignore[assignment]
    subscriber = Subscriber(client, sub_pc)
    sub_pc.on_track = subscriber.on_track
    tasks.append(asyncio.get_running_loop().create_task(_pump(client, sub_pc, {PUBLISHER: pub_pc, SUBSCRIBER: sub_pc})))
    return subscriber


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _embedded_server() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kitewire",
        "serve",
        "--dev",
        "--port",
        "0",
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"embedded server did not start: {line!r}")
    return process, line.strip().rsplit(" ", 1)[-1]


async def _run(args: argparse.Namespace) -> int:
    server_process: asyncio.subprocess.Process | None = None
    url = args.url
    if url is None:
        server_process, url = await _embedded_server()
    publishers: list[Publisher] = []
    subscribers: list[Subscriber] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        loop = asyncio.get_running_loop()
        clip = await loop.run_in_executor(
            None, encode_clip, args.codec, args.width, args.height, args.fps, args.bitrate, int(args.fps * 2)
        )

        def token(identity: str) -> str:
            return create_token(args.api_key, args.api_secret, identity=identity, room=args.room)

        for index in range(args.subscribers):
            subscribers.append(await _start_subscriber(url, token(f"sub-{index}"), tasks))
        for index in range(args.publishers):
            publishers.append(await _start_publisher(url, token(f"pub-{index}"), args, clip, tasks))
        cpu_before = _cpu_seconds(server_process.pid) if server_process is not None else None
        started = time.monotonic()
        await asyncio.gather(*(p.run(started + args.duration) for p in publishers))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        cpu_after = _cpu_seconds(server_process.pid) if server_process is not None else None
        sent_fps = sum(p.frames_sent for p in publishers) / max(1, len(publishers)) / elapsed
        print(
            f"simclient: {args.publishers} publisher(s) x {args.subscribers} subscriber(s), "
            f"{args.width}x{args.height} {args.codec} @ {args.fps:g} fps for {elapsed:.1f} s"
        )
        print(f"{'client':<10} {'tracks':>6} {'fps/track':>10} {'anchor fps':>10} {'kbit/s':>8} {'keyframes':>9}")
        for index, sub in enumerate(subscribers):
            tracks = len(sub.frames)
            fps = (sum(sub.frames.values()) / tracks / elapsed) if tracks else 0.0
            print(
                f"{'sub-' + str(index):<10} {tracks:>6} {fps:>10.1f} {sent_fps:>10.1f} "
                f"{sub.bytes * 8 / elapsed / 1000:>8.0f} {sub.keyframes:>9}"
            )
        if cpu_before is not None and cpu_after is not None:
            print(f"server CPU: {100 * (cpu_after - cpu_before) / elapsed:.0f}% of one core")
        ok = all(len(sub.frames) == args.publishers for sub in subscribers)
        return 0 if ok else 1
    finally:
        for task in tasks:
            task.cancel()
        for client in [p.client for p in publishers] + [s.client for s in subscribers]:
            with contextlib.suppress(Exception):
                await client.close()
        for pc in [p.pc for p in publishers] + [s.pc for s in subscribers]:
            with contextlib.suppress(Exception):
                await pc.close()
        if server_process is not None and server_process.returncode is None:
            server_process.terminate()
            try:
                await asyncio.wait_for(server_process.wait(), 10)
            except TimeoutError:
                server_process.kill()
                await server_process.wait()


def run(args: argparse.Namespace) -> int:
    """Run simulated publishers and subscribers and print what arrived."""
    if not 1 <= args.publishers <= _MAX_CLIENTS or not 0 <= args.subscribers <= _MAX_CLIENTS:
        print(
            f"simclient: expected 1..{_MAX_CLIENTS} publishers and 0..{_MAX_CLIENTS} subscribers, "
            f"got {args.publishers} and {args.subscribers}",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.duration <= _MAX_DURATION:
        print(f"simclient: --duration: expected 0..{_MAX_DURATION:.0f} s, got {args.duration}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args))


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m kitewire.server.simclient", description=__doc__)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
