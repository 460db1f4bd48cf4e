"""Minutes of real video through the embedded server, past two 16-bit sequence wraps (issue 8).

A kitewire -> kitewire and an official -> official pair, each peer in its own
process (the benchmark peers of :mod:`kitewire.bench._peers`), publish noise
frames at a high bitrate so each stream carries about a thousand packets a
second. The test runs at least three minutes and until every stream's incoming
and outgoing RTP sequence numbers have wrapped past 65535 twice (at most six
minutes), then checks that frames kept coming across each wrap: no gap over
200 ms between consecutive frames the subscriber yielded (frames identified by
the counter drawn in their pixels; how many counters went missing there is
printed beside it). A gap during most of which the server received nothing from
the publisher is the publisher's (or this process's) CPU starvation upstream of
any wrap handling, and is reported but not held against the wraps.

Marked ``long``: it is part of the default run (CI runs it); deselect it
locally with ``-m "not long"``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from kitewire.bench._children import Peer, peer_arguments
from kitewire.server import Server

from .embedded import embedded_server

pytestmark = [pytest.mark.long, pytest.mark.timeout(540)]

SEQUENCE_SPACE = 1 << 16
WRAPS_WANTED = 2
MIN_MEDIA_SECONDS = 180.0
MAX_MEDIA_SECONDS = 360.0
POLL_SECONDS = 0.05
FREEZE_GAP_MS = 200.0
# Gaps overlapping this window around the moment the server saw a wrap are checked: the
# wrap is seen within a poll (50 ms), and a frame whose packets crossed it reaches the
# subscriber well within a second; a narrow window keeps a loaded machine's occasional
# stall elsewhere in the run from counting against the wraps.
WRAP_WINDOW_BEFORE_S = 0.2
WRAP_WINDOW_AFTER_S = 1.0
COUNTER_MODULO = 4096
# a stream that forwards nothing for this long has frozen for good: stop early and fail
STALL_SECONDS = 15.0


@dataclass
class VideoSettings:
    """What the peers send: small noise frames, 30 fps, a bitrate cap the encoder fills."""

    width: int = 320
    height: int = 240
    fps: float = 30.0
    codec: str = "VP8"
    max_bitrate: int = 10_000_000


@dataclass
class SequenceWatch:
    """One sequence-number stream unwrapped from polls, with the moments it wrapped."""

    name: str
    extended: int | None = None
    wraps_ns: list[int] = field(default_factory=list)
    advanced_ns: int = 0
    advances_ns: list[int] = field(default_factory=list)
    """Every poll that found the stream further on."""

    def observe(self, sequence_number: int, now_ns: int) -> None:
        if self.extended is None:
            self.extended = sequence_number
            self.advanced_ns = now_ns
            return
        # polls are ~50 packets apart, far below half the sequence space
        delta = (sequence_number - self.extended) % SEQUENCE_SPACE
        if delta >= SEQUENCE_SPACE // 2:
            return  # a late packet moved nothing forward
        before = self.extended
        self.extended += delta
        if delta:
            self.advanced_ns = now_ns
            self.advances_ns.append(now_ns)
        if self.extended // SEQUENCE_SPACE > before // SEQUENCE_SPACE:
            self.wraps_ns.append(now_ns)

    def silence_ms(self, start_ns: int, end_ns: int) -> float:
        """The longest time within [start, end] in which the stream did not move on."""
        moments = [start_ns] + [moment for moment in self.advances_ns if start_ns < moment < end_ns] + [end_ns]
        return max((later - earlier) / 1e6 for earlier, later in zip(moments, moments[1:]))


@dataclass
class Pair:
    """One publisher -> subscriber pair in its own room."""

    sdk: str
    room: str
    publisher: Peer | None = None
    subscriber: Peer | None = None
    incoming: SequenceWatch = field(default_factory=lambda: SequenceWatch("incoming"))
    outgoing: SequenceWatch = field(default_factory=lambda: SequenceWatch("outgoing"))
    packets_forwarded: int = 0

    @property
    def wrapped_enough(self) -> bool:
        return min(len(self.incoming.wraps_ns), len(self.outgoing.wraps_ns)) >= WRAPS_WANTED

    def stalled(self, now_ns: int) -> bool:
        return any(
            side.extended is not None and now_ns - side.advanced_ns > STALL_SECONDS * 1e9
            for side in (self.incoming, self.outgoing)
        )


async def _start_pair(server: Server, pair: Pair, video: VideoSettings, seconds: float) -> None:
    pair.subscriber = await Peer.start(
        f"{pair.sdk}-subscriber",
        ["subscribe", "--sdk", pair.sdk, "--capacity", "0", "--read-interval", "0"]
        + peer_arguments(server.url, pair.room, "subscriber", video),
    )
    await pair.subscriber.wait_event("connected", 60)
    pair.publisher = await Peer.start(
        f"{pair.sdk}-publisher",
        ["publish", "--sdk", pair.sdk, "--seconds", str(seconds), "--noise", "--max-bitrate", str(video.max_bitrate)]
        + peer_arguments(server.url, pair.room, "publisher", video),
    )
    await pair.publisher.wait_event("capturing", 60)
    await pair.subscriber.wait_event("first_frame", 30)


def _poll_sequences(server: Server, pair: Pair, now_ns: int) -> None:
    """Read the server's newest incoming and outgoing sequence numbers of the pair's one video stream."""
    room = server.rooms.rooms.get(pair.room)
    subscriber = room.participants.get("subscriber") if room is not None else None
    if subscriber is None:
        return
    for downtrack in subscriber.subscriptions.values():
        # the publisher sends one SSRC (no simulcast): its newest wire sequence number
        incoming = list(downtrack.track.newest_sequence_numbers().values())
        if incoming:
            pair.incoming.observe(incoming[0], now_ns)
        if downtrack.rewriter.packets_forwarded:
            pair.outgoing.observe(downtrack.rewriter.last_sequence_number, now_ns)
        pair.packets_forwarded = downtrack.rewriter.packets_forwarded


def _gaps_around(frames: list[list[int]], wrap_ns: int) -> tuple[float, int, tuple[int, int]]:
    """(longest gap in ms, counters missing, the longest gap's ends) among the yields around one wrap."""
    start, end = wrap_ns - int(WRAP_WINDOW_BEFORE_S * 1e9), wrap_ns + int(WRAP_WINDOW_AFTER_S * 1e9)
    # the frame just before the window and the one just after bound its gaps
    inside = [frame for frame in frames if start <= frame[0] <= end]
    before = [frame for frame in frames if frame[0] < start][-1:]
    after = [frame for frame in frames if frame[0] > end][:1]
    edges = before + inside + after
    if len(edges) < 2:
        return float("inf"), 0, (start, end)
    earliest, latest = max(zip(edges, edges[1:]), key=lambda pair: pair[1][0] - pair[0][0])
    counters = [frame[1] for frame in edges if frame[1] >= 0]
    missing = sum((later - earlier) % COUNTER_MODULO - 1 for earlier, later in zip(counters, counters[1:]))
    return (latest[0] - earliest[0]) / 1e6, missing, (earliest[0], latest[0])


async def test_streams_cross_two_sequence_wraps_without_freezing() -> None:
    video = VideoSettings()
    pairs = [Pair("kitewire", "long-kitewire"), Pair("official", "long-official")]
    async with embedded_server() as server:
        try:
            for pair in pairs:
                await _start_pair(server, pair, video, MAX_MEDIA_SECONDS + 60)
            started = time.monotonic()
            while True:
                now_ns = time.monotonic_ns()
                for pair in pairs:
                    _poll_sequences(server, pair, now_ns)
                elapsed = time.monotonic() - started
                if elapsed >= MAX_MEDIA_SECONDS or any(pair.stalled(now_ns) for pair in pairs):
                    break
                if elapsed >= MIN_MEDIA_SECONDS and all(pair.wrapped_enough for pair in pairs):
                    break
                await asyncio.sleep(POLL_SECONDS)
            stopped_ns = time.monotonic_ns()
            # frames sent just before the stop still travel
            await asyncio.sleep(0.5)
            reports: dict[str, list[list[int]]] = {}
            for pair in pairs:
                assert pair.subscriber is not None
                pair.subscriber.close_stdin()
                reports[pair.sdk] = (await pair.subscriber.wait_event("frames", 60))["frames"]
        finally:
            for pair in pairs:
                for peer in (pair.publisher, pair.subscriber):
                    if peer is not None:
                        await peer.stop()
    for pair in pairs:
        summary = (
            f"{pair.sdk}: {pair.packets_forwarded} packets forwarded in {elapsed:.0f} s, "
            f"incoming wraps {len(pair.incoming.wraps_ns)}, outgoing wraps {len(pair.outgoing.wraps_ns)}"
        )
        assert pair.wrapped_enough, f"a stream stopped short of {WRAPS_WANTED} sequence wraps: {summary}"
        frames = reports[pair.sdk]
        # for judging a failure: a loaded machine freezes a stream now and then, wraps or not
        freezes = sum(1 for earlier, later in zip(frames, frames[1:]) if later[0] - earlier[0] > FREEZE_GAP_MS * 1e6)
        print(f"{summary}; {len(frames)} frames yielded, {freezes} gaps over {FREEZE_GAP_MS:.0f} ms in the whole run")
        for side in (pair.incoming, pair.outgoing):
            for wrap_ns in side.wraps_ns:
                longest, missing, (gap_start, gap_end) = _gaps_around(frames, wrap_ns)
                at = (wrap_ns - frames[0][0]) / 1e9 if frames else 0.0
                # how long, within that gap, the server received nothing from the publisher
                silent = pair.incoming.silence_ms(gap_start, gap_end)
                # a frame or two the encoder or a loaded machine skipped is no freeze; the gap is the criterion
                print(
                    f"{pair.sdk} {side.name} wrap at {at:.0f} s: longest gap {longest:.0f} ms "
                    f"(publisher silent {silent:.0f} ms of it), {missing} frames missing"
                )
                if longest > FREEZE_GAP_MS and silent >= longest / 2:
                    # nothing reached the server for most of the gap: the publisher (or this whole
                    # process) was starved of CPU on a shared machine; no wrap handling is involved
                    continue
                assert longest <= FREEZE_GAP_MS, (
                    f"{pair.sdk}: {longest:.0f} ms without a frame at the {side.name} wrap {at:.0f} s in, "
                    f"{missing} frames missing ({summary})"
                )
        assert frames, f"{pair.sdk}: no frames reported ({summary})"
        silent_s = (stopped_ns - frames[-1][0]) / 1e9
        assert silent_s < 1.0, f"{pair.sdk}: the last frame came {silent_s:.0f} s before the end ({summary})"
