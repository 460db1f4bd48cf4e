"""A/V sync benchmark: how far apart a flash and its beep reach a subscriber, kitewire beside the
official SDK, through kitewire serve.

``kitewire bench av-sync [--av-sync-clips N] [--av-sync-seconds S]`` plays, for each clip, the same
clip (a flash on screen at each beep, once a second) from an official publisher (livekit's own
AVSynchronizer) and from a kitewire publisher (kitewire's AVSynchronizer) at once, in one room,
to one official and one kitewire subscriber: four rows measured under the same load. The
official -> official row is the anchor: what libwebrtc's receive side makes of a publisher it
knows through this server. Each peer is a child process (``python -m kitewire.bench.av_sync
publish|subscribe --sdk kitewire|official``); a subscriber notes when each flash's first bright
picture and each beep's first loud sample were yielded (time.monotonic). A row's figure for a
clip is the median of flash minus beep over the clip's pairs after the first (+ means the
picture came late); the table shows the median of those over the clips.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kitewire.bench._children import Peer, PeerError, load_average
from kitewire.bench._peers import emit, sdk_module, stdin_closed

FPS = 30
WIDTH, HEIGHT = 320, 240
RATE = 48_000
BEEP_EVERY = 1.0
BEEP_LENGTH = 0.2
AUDIO_FRAME = 0.01
SDKS = ("official", "kitewire")
# (publisher, subscriber), the anchor first
ROWS = (("official", "official"), ("kitewire", "official"), ("official", "kitewire"), ("kitewire", "kitewire"))
MODULE = "kitewire.bench.av_sync"
# seconds from publishing to the clip's first frame: with four peers starting at once on a small
# machine, the receivers' jitter buffers first grow through the start-up's CPU contention
PREROLL = 3.0


def beeping(t: float) -> bool:
    """Whether the clip beeps (and flashes) at media time ``t``: 0.2 s of every second from the first."""
    return (t % BEEP_EVERY) < BEEP_LENGTH and t >= BEEP_EVERY


def _picture(rtc: Any, bright: bool) -> Any:
    luma = np.full(WIDTH * HEIGHT, 235 if bright else 16, dtype=np.uint8)
    chroma = np.full(WIDTH * HEIGHT // 2, 128, dtype=np.uint8)
    return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.I420, bytearray(luma.tobytes() + chroma.tobytes()))


async def play_clip(rtc: Any, sync: Any, seconds: float) -> None:
    """Push ``seconds`` of the clip to ``sync`` (an AVSynchronizer of ``rtc``) in media order:
    each picture, then the 10 ms audio frames up to the next one."""
    dark, bright = _picture(rtc, False), _picture(rtc, True)
    per_frame = int(RATE * AUDIO_FRAME)
    audio_at = 0
    t_index = np.arange(per_frame)
    for index in range(int(seconds * FPS)):
        t = index / FPS
        await sync.push(bright if beeping(t) else dark)
        while audio_at < (index + 1) * RATE / FPS:
            start = audio_at / RATE
            tone = np.sin(2 * np.pi * 1000 * (audio_at + t_index) / RATE) * 12000
            loud = np.array([beeping(start + i / RATE) for i in range(0, per_frame, 48)]).repeat(48)[:per_frame]
            samples = (tone * loud).astype(np.int16)
            await sync.push(rtc.AudioFrame(bytearray(samples.tobytes()), RATE, 1, per_frame))
            audio_at += per_frame


async def publish_clip(sdk: str, url: str, token: str, seconds: float, preroll: float = 1.0) -> None:
    """Join with ``sdk``, publish a camera and a microphone track and, ``preroll`` seconds later,
    play the clip through its AVSynchronizer."""
    rtc = sdk_module(sdk)
    room = rtc.Room()
    await room.connect(url, token)
    try:
        audio_source = rtc.AudioSource(RATE, 1)
        video_source = rtc.VideoSource(WIDTH, HEIGHT)
        await room.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("screen", video_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        await room.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("sound", audio_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
        )
        emit("published")
        # the subscribers open their streams once they see both tracks
        await asyncio.sleep(preroll)
        sync = rtc.AVSynchronizer(audio_source=audio_source, video_source=video_source, video_fps=FPS)
        await play_clip(rtc, sync, seconds)
        await sync.wait_for_playout()
        await sync.aclose()
        emit("played")
    finally:
        await room.disconnect()


@dataclass
class Onsets:
    """Arrival times (monotonic seconds) of each flash's first bright frame and each beep's first loud sample."""

    flashes: list[float] = field(default_factory=list)
    beeps: list[float] = field(default_factory=list)
    _bright: bool = False
    _loud_until: float = 0.0

    def video(self, frame: Any) -> None:
        """Note a yielded picture (either SDK's VideoFrame, I420)."""
        now = time.monotonic()
        luma = np.frombuffer(bytes(frame.data), dtype=np.uint8)[: frame.width * frame.height]
        bright = float(luma.mean()) > 128
        if bright and not self._bright:
            self.flashes.append(now)
        self._bright = bright

    def audio(self, frame: Any) -> None:
        """Note a yielded audio frame (either SDK's AudioFrame, int16)."""
        now = time.monotonic()
        samples = np.frombuffer(bytes(frame.data.cast("B")), dtype=np.int16).reshape(-1, frame.num_channels)[:, 0]
        loud = np.nonzero(np.abs(samples.astype(np.int32)) > 4000)[0]
        if not len(loud):
            return
        # the frame's last sample arrived now; an earlier one arrived that much sooner
        onset = now - (len(samples) - int(loud[0])) / frame.sample_rate
        if onset > self._loud_until:
            self.beeps.append(onset)
        self._loud_until = now + (BEEP_EVERY - BEEP_LENGTH) / 2

    def offsets(self) -> list[float]:
        """For each flash, its arrival minus that of the nearest beep (seconds; + means video late)."""
        out = []
        for flash in self.flashes:
            if self.beeps:
                nearest = min(self.beeps, key=lambda beep: abs(beep - flash))
                if abs(nearest - flash) < BEEP_EVERY / 2:
                    out.append(flash - nearest)
        return out


def settled_skew(offsets: Sequence[float]) -> float | None:
    """The median flash-minus-beep (seconds) from the second pair on (the first lands while the
    receivers' jitter buffers settle: libwebrtc's NetEq starts deep and shrinks); None without one."""
    settled = list(offsets[1:])
    return float(statistics.median(settled)) if settled else None


async def watch(rtc: Any, track_video: Any, track_audio: Any, onsets: Onsets, stop: asyncio.Future[None]) -> None:
    """Feed ``onsets`` from a video and an audio track of ``rtc`` until ``stop`` is done."""

    async def frames() -> None:
        async for event in rtc.VideoStream(track_video):
            onsets.video(event.frame)

    async def samples() -> None:
        async for event in rtc.AudioStream(track_audio):
            onsets.audio(event.frame)

    tasks = [asyncio.create_task(frames()), asyncio.create_task(samples())]
    try:
        await asyncio.shield(stop)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ClipWatcher:
    """Watches every remote participant's camera + microphone pair in ``room`` (``rtc``'s Room)."""

    def __init__(self, rtc: Any, room: Any) -> None:
        self._rtc = rtc
        self._tracks: dict[str, dict[int, Any]] = {}
        self.onsets: dict[str, Onsets] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        room.on("track_subscribed", self._on_track)

    def _on_track(self, track: Any, _publication: Any, participant: Any) -> None:
        tracks = self._tracks.setdefault(participant.identity, {})
        tracks[int(track.kind)] = track
        video, audio = int(self._rtc.TrackKind.KIND_VIDEO), int(self._rtc.TrackKind.KIND_AUDIO)
        if video in tracks and audio in tracks and participant.identity not in self.onsets:
            onsets = self.onsets[participant.identity] = Onsets()
            self._tasks.append(asyncio.create_task(watch(self._rtc, tracks[video], tracks[audio], onsets, self._stop)))

    async def wait_for(self, identities: Sequence[str], timeout: float) -> None:
        """Wait until the tracks of every one of ``identities`` are watched."""
        deadline = time.monotonic() + timeout
        while not all(identity in self.onsets for identity in identities):
            if time.monotonic() > deadline:
                raise TimeoutError(f"watching {sorted(self.onsets)}, expected {list(identities)}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Stop watching."""
        if not self._stop.done():
            self._stop.set_result(None)
        await asyncio.gather(*self._tasks)


async def _subscribe(args: argparse.Namespace) -> None:
    rtc = sdk_module(args.sdk)
    room = rtc.Room()
    watcher = ClipWatcher(rtc, room)
    await room.connect(args.url, args.token)
    emit("connected")
    await stdin_closed(asyncio.get_running_loop())
    await watcher.close()
    emit(
        "onsets",
        clips={who: {"flashes": seen.flashes, "beeps": seen.beeps} for who, seen in watcher.onsets.items()},
    )
    await room.disconnect()


class _StampSink:
    """A frame sink noting the capture stamp of each flash's first picture or each beep's first loud sample."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.onsets: list[float] = []
        self._on = False

    def on_frame(self, frame: Any, timestamp_us: int, rotation: int, metadata: Any = None) -> None:
        if self.kind == "video":
            luma = np.frombuffer(bytes(frame.data), dtype=np.uint8)[: frame.width * frame.height]
            on, at = float(luma.mean()) > 128, timestamp_us / 1e6
        else:
            samples = np.frombuffer(bytes(frame.data.cast("B")), dtype=np.int16)
            loud = np.nonzero(np.abs(samples.astype(np.int32)) > 4000)[0]
            on = bool(len(loud))
            at = timestamp_us / 1e6 + (int(loud[0]) / RATE if on else 0.0)
        if on and not self._on:
            self.onsets.append(at)
        self._on = on

    def on_end(self) -> None:
        """The source closed."""


async def source_stamp_skews(seconds: float) -> list[float]:
    """Flash minus beep (seconds) on the capture stamps kitewire's AVSynchronizer gives its sources:
    what a sender report would say of them, before any network or receiver."""
    from kitewire import rtc

    audio, video = rtc.AudioSource(RATE, 1), rtc.VideoSource(WIDTH, HEIGHT)
    heard, seen = _StampSink("audio"), _StampSink("video")
    audio._fanout.add(heard)
    video._fanout.add(seen)
    sync = rtc.AVSynchronizer(audio_source=audio, video_source=video, video_fps=FPS)
    await play_clip(rtc, sync, seconds)
    await sync.wait_for_playout()
    await sync.aclose()
    return [flash - beep for flash, beep in zip(seen.onsets, heard.onsets, strict=False)]


@dataclass
class SyncRow:
    """Flash-minus-beep skews (ms, one per clip) of one publisher -> subscriber pair."""

    publisher: str
    subscriber: str
    skews_ms: list[float] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        """The median over the clips, None without one."""
        return float(statistics.median(self.skews_ms)) if self.skews_ms else None


def _identity(sdk: str) -> str:
    return f"{sdk}-clip"


async def run_clip(url: str, room: str, seconds: float) -> dict[tuple[str, str], list[float]]:
    """Play one clip from both publishers at once to both subscribers; each row's flash-minus-beep offsets (s)."""
    from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

    def token(identity: str) -> str:
        return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)

    peers: list[Peer] = []
    try:
        subscribers = {}
        for sdk in SDKS:
            peer = await Peer.start(
                f"{sdk}-av-viewer",
                ["subscribe", "--sdk", sdk, "--url", url, "--token", token(f"{sdk}-viewer")],
                module=MODULE,
            )
            peers.append(peer)
            subscribers[sdk] = peer
        for peer in subscribers.values():
            await peer.wait_event("connected", 60)
        publishers = []
        for sdk in SDKS:
            arguments = [
                "publish",
                "--sdk",
                sdk,
                "--url",
                url,
                "--token",
                token(_identity(sdk)),
                "--seconds",
                str(seconds),
                "--preroll",
                str(PREROLL),
            ]
            peer = await Peer.start(f"{sdk}-av-clip", arguments, module=MODULE)
            peers.append(peer)
            publishers.append(peer)
        for peer in publishers:
            await peer.wait_event("played", seconds + 60)
        await asyncio.sleep(1.0)
        out: dict[tuple[str, str], list[float]] = {}
        for sdk, peer in subscribers.items():
            peer.close_stdin()
            report = await peer.wait_event("onsets", 30)
            for publisher in SDKS:
                seen = report["clips"].get(_identity(publisher))
                if seen is not None:
                    out[(publisher, sdk)] = Onsets(list(seen["flashes"]), list(seen["beeps"])).offsets()
        return out
    finally:
        for peer in peers:
            await peer.stop()


async def run_benchmark(clips: int, seconds: float) -> list[SyncRow]:
    """Start kitewire serve in a child process and play ``clips`` clips through it."""
    from kitewire.bench.server_process import EmbeddedServer

    rows = {pair: SyncRow(*pair) for pair in ROWS}
    async with EmbeddedServer() as server:
        for index in range(clips):
            try:
                measured = await run_clip(server.url, f"bench-av-sync-{index}", seconds)
            except (PeerError, OSError, TimeoutError) as exc:
                for row in rows.values():
                    row.error = str(exc) or type(exc).__name__
                continue
            for pair, row in rows.items():
                skew = settled_skew(measured.get(pair, []))
                if skew is not None:
                    row.skews_ms.append(skew * 1000)
                    row.pairs.append(len(measured[pair]))
    return list(rows.values())


def format_table(rows: Sequence[SyncRow]) -> str:
    """The markdown table, the official pair's median beside each row."""
    anchor = next((r for r in rows if r.publisher == r.subscriber == "official" and r.skews_ms), None)
    lines = [
        "| publisher -> subscriber | clips | flash - beep, median ms | per clip ms | vs official pair |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        label = f"{row.publisher} -> {row.subscriber}"
        median = row.median_ms
        if median is None:
            lines.append(f"| {label} | 0 | - | - | {row.error or 'no flash and beep pairs'} |")
            continue
        per_clip = ", ".join(f"{skew:+.0f}" for skew in row.skews_ms)
        if row is anchor:
            versus = "anchor"
        elif anchor is not None and anchor.median_ms is not None:
            versus = f"{median - anchor.median_ms:+.1f} ms"
        else:
            versus = "-"
        lines.append(f"| {label} | {len(row.skews_ms)} | {median:+.1f} | {per_clip} | {versus} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kitewire bench av-sync``."""
    parser.add_argument("--av-sync-clips", type=int, default=3, help="av-sync bench: clips played (median shown)")
    parser.add_argument("--av-sync-seconds", type=float, default=10.0, help="av-sync bench: seconds per clip")


def run(args: argparse.Namespace) -> int:
    """``kitewire bench av-sync``: print the table."""
    clips = int(getattr(args, "av_sync_clips", 3))
    seconds = float(getattr(args, "av_sync_seconds", 10.0))
    if clips < 1 or seconds < 4:
        print("kitewire bench av-sync: expected at least 1 clip of at least 4 s", file=sys.stderr)
        return 2
    print(f"kitewire bench av-sync: {clips} clips of {seconds:.0f} s, load average {load_average()}")
    stamps = asyncio.run(source_stamp_skews(min(seconds, 6.0)))
    results = asyncio.run(run_benchmark(clips, seconds))
    print(format_table(results))
    if stamps:
        low, mid, high = (1000 * value for value in (min(stamps), statistics.median(stamps), max(stamps)))
        print(
            "kitewire AVSynchronizer at its sources (capture stamps, no network): "
            f"flash - beep median {mid:+.1f} ms, from {low:+.1f} to {high:+.1f} ms"
        )
    print(f"load average after: {load_average()}")
    return 0 if all(row.error is None for row in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kitewire.bench.av_sync publish|subscribe ...`` (a peer) or ``bench`` (the table)."""
    parser = argparse.ArgumentParser(prog="python -m kitewire.bench.av_sync")
    parser.add_argument("role", choices=("publish", "subscribe", "bench"))
    parser.add_argument("--sdk", choices=SDKS, default="kitewire")
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--preroll", type=float, default=1.0, help="publish: seconds from publishing to the clip")
    args = parser.parse_args(argv)
    if args.role == "bench":
        args.av_sync_seconds, args.av_sync_clips = args.seconds, args.clips
        return run(args)
    try:
        if args.role == "publish":
            asyncio.run(publish_clip(args.sdk, args.url, args.token, args.seconds, args.preroll))
        else:
            asyncio.run(_subscribe(args))
    except Exception as exc:  # reported to the parent, which prints it in the table
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
