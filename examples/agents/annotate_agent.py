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


async def annotate_camera(
    ctx: JobContext, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
) -> None:
    """Publish the annotated copy of one camera for as long as it is published.

    The copy is published before the camera is subscribed, so the two negotiations
    with the server happen one after the other.
    """
    source = rtc.VideoSource(publication.width or 640, publication.height or 480)
    copy = rtc.LocalVideoTrack.create_video_track(f"annotated-{participant.identity}", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False)
    ours = await ctx.room.local_participant.publish_track(copy, options)
    subscribed = asyncio.Event()

    def on_track_subscribed(track: rtc.Track, subscribed_publication: rtc.RemoteTrackPublication, *_: object) -> None:
        if subscribed_publication.sid == publication.sid:
            subscribed.set()

    ctx.room.on("track_subscribed", on_track_subscribed)
    publication.set_subscribed(True)
    previous: np.ndarray | None = None
    loop = asyncio.get_running_loop()
    try:
        await subscribed.wait()
        track = publication.track
        assert isinstance(track, rtc.RemoteVideoTrack)
        stream = rtc.VideoStream(track, capacity=STREAM_CAPACITY, format=rtc.VideoBufferType.RGBA)
        try:
            async for event in stream:
                frame = event.frame
                pixels = np.frombuffer(frame.data, dtype=np.uint8).reshape(frame.height, frame.width, 4)
                # a few milliseconds of numpy per frame: off the event loop
                out, previous = await loop.run_in_executor(None, annotate, pixels, previous)
                source.capture_frame(rtc.VideoFrame(frame.width, frame.height, rtc.VideoBufferType.RGBA, out.tobytes()))
        finally:
            await stream.aclose()
    finally:
        ctx.room.off("track_subscribed", on_track_subscribed)
        await ctx.room.local_participant.unpublish_track(ours.sid)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """One job per room: an annotated copy of every camera in it."""
    copies: dict[str, asyncio.Task[None]] = {}

    def start(publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        camera = publication.kind == rtc.TrackKind.KIND_VIDEO and publication.source == rtc.TrackSource.SOURCE_CAMERA
        if camera and publication.sid not in copies:
            copies[publication.sid] = asyncio.create_task(annotate_camera(ctx, publication, participant))

    def on_track_unpublished(publication: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant) -> None:
        task = copies.pop(publication.sid, None)
        if task is not None:
            task.cancel()

    ctx.room.on("track_published", start)
    ctx.room.on("track_unpublished", on_track_unpublished)
    # nothing is subscribed by itself: each camera is subscribed once its copy is published
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    for participant in ctx.room.remote_participants.values():
        for publication in participant.track_publications.values():
            start(publication, participant)
    logger.info("annotating agent in room %s", ctx.room.name)


if __name__ == "__main__":
    cli.run_app(server)
