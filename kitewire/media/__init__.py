"""Media layer: codecs, RTP payload (de)packetization, keyframe detection,
frame assembly with NACK tracking, send-side packet history and livekit's
simulcast layer presets.

Everything here works on frames, payload bytes and RTP *fields* (sequence
number, timestamp, marker); RTP header bytes and sockets belong to
``kitewire.transport``.

Sending one layer (encode in a worker thread; PyAV releases the GIL)::

    encoder = VideoEncoder("VP8", 1280, 720, bitrate=1_700_000, framerate=30)
    history = PacketHistory()
    encoded = await loop.run_in_executor(None, encoder.encode, av_frame)
    for index, payload in enumerate(encoded):      # marker on the last one
        marker = index == len(encoded) - 1
        ...build the RTP packet (seq, 90 kHz timestamp, marker), send it,
        history.add(seq, packet, time.monotonic())
    # on NACK: history.get_many(seqs, now); on PLI/FIR: encoder.request_keyframe()

Receiving one SSRC::

    assembler = FrameAssembler("VP8")
    decoder = VideoDecoder("VP8")
    for frame in assembler.push(seq, timestamp, marker, payload, now):
        pictures = await loop.run_in_executor(None, decoder.decode, frame.data)
        if decoder.needs_keyframe:
            assembler.request_keyframe()
    # every ~20 ms: assembler.poll(now), assembler.nack_list(now) -> RTCP NACK,
    # assembler.keyframe_request(now) -> RTCP PLI

Forwarding (SFU): ``is_keyframe(mime_type, payload)`` on each packet tells
where a layer switch may start.
"""

from typing import TYPE_CHECKING

from kitewire._lazy import lazy_exports

if TYPE_CHECKING:
    from kitewire.media.assembler import AssembledFrame, FrameAssembler
    from kitewire.media.codecs import (
        SUPPORTED_CODECS,
        EncodedFrame,
        VideoDecoder,
        VideoEncoder,
        normalize_codec,
    )
    from kitewire.media.h264 import H264Depacketizer, H264Packetizer, split_annexb
    from kitewire.media.keyframe import is_keyframe
    from kitewire.media.packet_history import PacketHistory
    from kitewire.media.packet_trailer import FrameMetadata, append_trailer, split_trailer
    from kitewire.media.packetizer import (
        Depacketizer,
        Packetizer,
        create_depacketizer,
        create_packetizer,
    )
    from kitewire.media.simulcast import (
        JS_VIDEO_PRESETS,
        VIDEO_PRESETS,
        VideoLayerPlan,
        VideoPreset,
        default_video_preset,
        plan_video_layers,
    )
    from kitewire.media.vp8 import (
        Vp8Depacketizer,
        Vp8Descriptor,
        Vp8Packetizer,
        parse_vp8_descriptor,
    )

# imported on first use (see kitewire/_lazy.py): the application's side of a media
# process needs a few light modules of this package, not all of it
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AssembledFrame": ".assembler",
        "FrameAssembler": ".assembler",
        "SUPPORTED_CODECS": ".codecs",
        "EncodedFrame": ".codecs",
        "VideoDecoder": ".codecs",
        "VideoEncoder": ".codecs",
        "normalize_codec": ".codecs",
        "H264Depacketizer": ".h264",
        "H264Packetizer": ".h264",
        "split_annexb": ".h264",
        "is_keyframe": ".keyframe",
        "PacketHistory": ".packet_history",
        "FrameMetadata": ".packet_trailer",
        "append_trailer": ".packet_trailer",
        "split_trailer": ".packet_trailer",
        "Depacketizer": ".packetizer",
        "Packetizer": ".packetizer",
        "create_depacketizer": ".packetizer",
        "create_packetizer": ".packetizer",
        "JS_VIDEO_PRESETS": ".simulcast",
        "VIDEO_PRESETS": ".simulcast",
        "VideoLayerPlan": ".simulcast",
        "VideoPreset": ".simulcast",
        "default_video_preset": ".simulcast",
        "plan_video_layers": ".simulcast",
        "Vp8Depacketizer": ".vp8",
        "Vp8Descriptor": ".vp8",
        "Vp8Packetizer": ".vp8",
        "parse_vp8_descriptor": ".vp8",
    },
)

__all__ = [
    "JS_VIDEO_PRESETS",
    "SUPPORTED_CODECS",
    "VIDEO_PRESETS",
    "AssembledFrame",
    "Depacketizer",
    "EncodedFrame",
    "FrameAssembler",
    "FrameMetadata",
    "H264Depacketizer",
    "H264Packetizer",
    "PacketHistory",
    "Packetizer",
    "VideoDecoder",
    "VideoEncoder",
    "VideoLayerPlan",
    "VideoPreset",
    "Vp8Depacketizer",
    "Vp8Descriptor",
    "Vp8Packetizer",
    "append_trailer",
    "create_depacketizer",
    "create_packetizer",
    "default_video_preset",
    "is_keyframe",
    "normalize_codec",
    "parse_vp8_descriptor",
    "plan_video_layers",
    "split_annexb",
    "split_trailer",
]
