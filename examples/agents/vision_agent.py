"""A vision agent: a livekit-agents worker that measures every camera frame in the room.

When a participant publishes a camera, the agent reads its frames with
``rtc.VideoStream`` and computes two figures per frame with numpy: the mean
brightness (0-255, from the luma plane) and the motion (mean absolute luma
change from the previous frame). Each frame's figures go to the room in data
packets on the topic ``vision.figures`` (JSON: the frames counted so far and the
figures of each frame since the previous packet, ten packets a second); the latest ones are also kept in
the agent's own participant attributes ``vision.brightness``, ``vision.motion``
and ``vision.frames`` (updated a few times a second). No outside service is
used.

Run it against kitewire's server (or any LiveKit server)::

    kitewire serve --dev
    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
    python vision_agent.py dev

Then join the room with a camera (any LiveKit client; ``examples/publish_pattern.py``
publishes a test pattern). The worker registers without an agent name, so it is
dispatched to every new room; set ``LIVEKIT_AGENT_NAME`` to make it an agent that
comes only when dispatched explicitly (AgentDispatchService or a token's
roomConfig.agents).

It needs ``livekit-agents`` and ``numpy`` (``pip install livekit-agents numpy``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np
from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, cli

logger = logging.getLogger("vision-agent")

TOPIC = "vision.figures"
# Data packets carry the figures of the frames since the previous packet, ten packets a second.
PACKET_INTERVAL_SECONDS = 0.1
# Attribute updates are a round trip to the server each: a few a second is plenty.
ATTRIBUTE_INTERVAL_SECONDS = 0.5
# Frames waiting for the analysis (one second's worth rides out a stall of the job process);
# a slower step drops the oldest, never grows memory.
STREAM_CAPACITY = 30
# Figures waiting for the reporter when sending stalls (ten seconds of 30 fps); the oldest go first.
MAX_UNSENT_FIGURES = 300
# Every 4th pixel in each direction: the figures barely change, the cost drops 16-fold.
STEP = 4

# One job process kept warm, so a new room's agent joins without waiting for a process to start;
# the worker's health-check HTTP server on this machine only.
server = AgentServer(num_idle_processes=1, host="127.0.0.1")


def luma(frame: rtc.VideoFrame) -> np.ndarray:
    """The frame's luma plane, subsampled, as float32 (the first width*height bytes of I420)."""
    plane = np.frombuffer(frame.data, dtype=np.uint8, count=frame.width * frame.height)
    return plane.reshape(frame.height, frame.width)[::STEP, ::STEP].astype(np.float32)


class Figures:
    """What the frame loop measured and the reporter has not sent yet (the two share the event loop)."""

    def __init__(self) -> None:
        self.frames = 0
        self.brightness = 0.0
        self.motion = 0.0
        self.unsent: list[dict[str, float | int]] = []


async def report(ctx: JobContext, figures: Figures, participant: str, track_sid: str) -> None:
    """Send the figures measured so far: a data packet ten times a second, the attributes twice a second.

    Each send is a round trip through the SDK and the server; it runs beside the
    frame loop, never in it, so a slow send (a busy machine, a slow server) does not
    hold up the frames (the stream's bounded queue would drop them meanwhile).
    """
    local = ctx.room.local_participant
    last_attributes = 0.0
    while True:
        await asyncio.sleep(PACKET_INTERVAL_SECONDS)
        if figures.unsent:
            batch, figures.unsent = figures.unsent, []
            packet = {"participant": participant, "track": track_sid, "frames": batch[-1]["frame"], "figures": batch}
            await local.publish_data(json.dumps(packet), topic=TOPIC, reliable=True)
        now = time.monotonic()
        if figures.frames and now - last_attributes >= ATTRIBUTE_INTERVAL_SECONDS:
            last_attributes = now
            await local.set_attributes(
                {
                    "vision.brightness": f"{figures.brightness:.2f}",
                    "vision.motion": f"{figures.motion:.2f}",
                    "vision.frames": str(figures.frames),
                }
            )


async def measure(ctx: JobContext, track: rtc.RemoteVideoTrack, participant: rtc.RemoteParticipant) -> None:
    """Read every frame of one camera and publish its figures.

    The loop only measures (about a millisecond of numpy per frame) and awaits
    nothing but the next frame; ``report`` sends what it measured.
    """
    stream = rtc.VideoStream(track, capacity=STREAM_CAPACITY, format=rtc.VideoBufferType.I420)
    figures = Figures()
    reporter = asyncio.create_task(report(ctx, figures, participant.identity, track.sid))
    previous: np.ndarray | None = None
    try:
        async for event in stream:
            current = luma(event.frame)
            brightness = float(current.mean())
            motion = (
                0.0 if previous is None or previous.shape != current.shape else float(np.abs(current - previous).mean())
            )
            previous = current
            figures.frames += 1
            figures.brightness, figures.motion = brightness, motion
            figures.unsent.append(
                {
                    "frame": figures.frames,
                    "brightness": round(brightness, 2),
                    "motion": round(motion, 2),
                    "timestamp_us": event.timestamp_us,
                }
            )
            if len(figures.unsent) > MAX_UNSENT_FIGURES:
                # the room stopped taking packets: keep the newest figures, never grow memory
                del figures.unsent[: len(figures.unsent) - MAX_UNSENT_FIGURES]
    finally:
        reporter.cancel()
        await stream.aclose()
        logger.info("camera of %s ended after %d frames", participant.identity, figures.frames)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """One job per room: measure every camera published in it."""
    watching: dict[str, asyncio.Task[None]] = {}

    def on_track_subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if isinstance(track, rtc.RemoteVideoTrack) and publication.source == rtc.TrackSource.SOURCE_CAMERA:
            watching[track.sid] = asyncio.create_task(measure(ctx, track, participant))

    def on_track_unsubscribed(track: rtc.Track, *_: object) -> None:
        task = watching.pop(track.sid, None)
        if task is not None:
            task.cancel()

    ctx.room.on("track_subscribed", on_track_subscribed)
    ctx.room.on("track_unsubscribed", on_track_unsubscribed)
    await ctx.connect(auto_subscribe=AutoSubscribe.VIDEO_ONLY)
    logger.info("vision agent in room %s", ctx.room.name)


if __name__ == "__main__":
    cli.run_app(server)
