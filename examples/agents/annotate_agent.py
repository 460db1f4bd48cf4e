"""An annotating agent: a livekit-agents worker that publishes an annotated copy of every camera.

For each camera published in the room the agent publishes a video track named
``annotated-<identity>``: the same frames with a green border, a brightness bar
along the left edge (its height is the frame's mean brightness) and a white box
around the part of the picture that moved most since the previous frame. The
figures come from numpy on the RGBA pixels; no outside service is used.

Run it like the vision agent::

    kitewire serve --dev
    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret
    python annotate_agent.py dev

It needs ``livekit-agents`` and ``numpy``.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, cli

logger = logging.getLogger("annotate-agent")

BORDER = 8  # pixels: wide enough to survive the video encoder
GRID = 8  # the picture is cut into GRID x GRID cells to find where it moved
BORDER_RGBA = np.array([0, 255, 0, 255], dtype=np.uint8)
BOX_RGBA = np.array([255, 255, 255, 255], dtype=np.uint8)
STREAM_CAPACITY = 4

server = AgentServer(num_idle_processes=1, host="127.0.0.1")


def most_moved_cell(current: np.ndarray, previous: np.ndarray | None) -> tuple[int, int] | None:
    """(row, column) of the grid cell whose luma changed most, None on the first frame."""
    if previous is None or previous.shape != current.shape:
        return None
    height, width = current.shape
    cell_h, cell_w = height // GRID, width // GRID
    change = np.abs(current - previous)[: cell_h * GRID, : cell_w * GRID]
    per_cell = change.reshape(GRID, cell_h, GRID, cell_w).mean(axis=(1, 3))
    row, column = np.unravel_index(int(per_cell.argmax()), per_cell.shape)
    return int(row), int(column)


def annotate(pixels: np.ndarray, previous_luma: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The annotated copy of an RGBA frame and the frame's luma (for the next frame's motion)."""
    height, width, _ = pixels.shape
    out = pixels.copy()
    current = pixels[..., :3].mean(axis=2, dtype=np.float32)
    cell = most_moved_cell(current, previous_luma)
    if cell is not None:
        cell_h, cell_w = height // GRID, width // GRID
        top, left = cell[0] * cell_h, cell[1] * cell_w
        out[top : top + cell_h, left : left + 2] = BOX_RGBA
        out[top : top + cell_h, left + cell_w - 2 : left + cell_w] = BOX_RGBA
        out[top : top + 2, left : left + cell_w] = BOX_RGBA
        out[top + cell_h - 2 : top + cell_h, left : left + cell_w] = BOX_RGBA
    bar = int(height * float(current.mean()) / 255.0)
    out[height - bar :, BORDER : 3 * BORDER] = BOX_RGBA
    out[:BORDER] = BORDER_RGBA
    out[-BORDER:] = BORDER_RGBA
    out[:, :BORDER] = BORDER_RGBA
    out[:, -BORDER:] = BORDER_RGBA
    return out, current


async def annotate_camera(ctx: JobContext, track: rtc.RemoteVideoTrack, participant: rtc.RemoteParticipant) -> None:
    """Publish the annotated copy of one camera for as long as it is subscribed."""
    stream = rtc.VideoStream(track, capacity=STREAM_CAPACITY, format=rtc.VideoBufferType.RGBA)
    source: rtc.VideoSource | None = None
    publication: rtc.LocalTrackPublication | None = None
    previous: np.ndarray | None = None
    loop = asyncio.get_running_loop()
    try:
        async for event in stream:
            frame = event.frame
            if source is None:
                source = rtc.VideoSource(frame.width, frame.height)
                copy = rtc.LocalVideoTrack.create_video_track(f"annotated-{participant.identity}", source)
                options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
                publication = await ctx.room.local_participant.publish_track(copy, options)
            pixels = np.frombuffer(frame.data, dtype=np.uint8).reshape(frame.height, frame.width, 4)
            # a few milliseconds of numpy per frame: off the event loop
            out, previous = await loop.run_in_executor(None, annotate, pixels, previous)
            source.capture_frame(rtc.VideoFrame(frame.width, frame.height, rtc.VideoBufferType.RGBA, out.tobytes()))
    finally:
        await stream.aclose()
        if publication is not None:
            await ctx.room.local_participant.unpublish_track(publication.sid)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """One job per room: an annotated copy of every camera in it."""
    copies: dict[str, asyncio.Task[None]] = {}

    def on_track_subscribed(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if isinstance(track, rtc.RemoteVideoTrack) and publication.source == rtc.TrackSource.SOURCE_CAMERA:
            copies[track.sid] = asyncio.create_task(annotate_camera(ctx, track, participant))

    def on_track_unsubscribed(track: rtc.Track, *_: object) -> None:
        task = copies.pop(track.sid, None)
        if task is not None:
            task.cancel()

    ctx.room.on("track_subscribed", on_track_subscribed)
    ctx.room.on("track_unsubscribed", on_track_unsubscribed)
    await ctx.connect(auto_subscribe=AutoSubscribe.VIDEO_ONLY)
    logger.info("annotating agent in room %s", ctx.room.name)


if __name__ == "__main__":
    cli.run_app(server)
