"""LiveKit's packet trailer: per-frame metadata carried at the end of the encoded frame.

The official SDKs (rust-sdks' libwebrtc frame transformer, used by livekit 1.2) append
this trailer to a video frame's bitstream before packetization when a track is
published with ``frame_metadata_features``, and strip it after depacketization::

    TLV* | trailer_len (1 byte) | "LKTS"

Each TLV is ``tag (1) | length (1) | value``; every byte of the TLVs and of
``trailer_len`` (the length of the whole trailer, envelope included, at most 255) is
XORed with 0xFF so an H264 start code can never appear inside it. Tags: 1 the user
timestamp (8 bytes, big-endian), 2 the frame id (4 bytes, big-endian), 3 user data
(any bytes). A field that is unset (0, or empty) is left out; with nothing set no
trailer is written at all. Unknown tags are skipped.

AV1 frames carry the same trailer inside a metadata OBU (type 5) of metadata type 31,
placed after the sequence header (or first), so the bitstream stays valid AV1.
"""

from __future__ import annotations

from dataclasses import dataclass

from kitewire.media.av1_obu import (
    OBU_METADATA,
    OBU_SEQUENCE_HEADER,
    OBU_TEMPORAL_DELIMITER,
    leb128,
    obu_spans,
    read_leb128,
)

__all__ = [
    "TRAILER_MAGIC",
    "FrameMetadata",
    "append_trailer",
    "attach_metadata",
    "build_trailer",
    "detach_metadata",
    "max_user_data_size",
    "restrict_to_features",
    "split_trailer",
]

TRAILER_MAGIC = b"LKTS"
_ENVELOPE_SIZE = 5  # trailer_len + magic
_MAX_TRAILER_SIZE = 255
_TAG_USER_TIMESTAMP = 1
_TAG_FRAME_ID = 2
_TAG_USER_DATA = 3
_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
_FLIP = bytes(b ^ 0xFF for b in range(256))


@dataclass(frozen=True)
class FrameMetadata:
    """Metadata of one video frame, as livekit.rtc's ``FrameMetadata`` has it.

    ``user_timestamp`` (microseconds, any clock the application chooses) and
    ``frame_id`` (a 32-bit number) are 0 when unset; ``user_data`` is empty when unset.
    Plain and picklable, so it can travel next to a frame between processes.
    """

    user_timestamp: int = 0
    frame_id: int = 0
    user_data: bytes = b""

    def __post_init__(self) -> None:
        if isinstance(self.user_timestamp, bool) or not isinstance(self.user_timestamp, int):
            raise ValueError(f"user_timestamp: expected an int, got {self.user_timestamp!r}")
        if not 0 <= self.user_timestamp <= _U64_MAX:
            raise ValueError(f"user_timestamp: expected 0..2**64-1, got {self.user_timestamp}")
        if isinstance(self.frame_id, bool) or not isinstance(self.frame_id, int):
            raise ValueError(f"frame_id: expected an int, got {self.frame_id!r}")
        if not 0 <= self.frame_id <= _U32_MAX:
            raise ValueError(f"frame_id: expected 0..2**32-1, got {self.frame_id}")
        if not isinstance(self.user_data, (bytes, bytearray, memoryview)):
            raise ValueError(f"user_data: expected bytes, got {type(self.user_data).__name__}")
        object.__setattr__(self, "user_data", bytes(self.user_data))
        if len(self.user_data) > max_user_data_size(self.user_timestamp, self.frame_id):
            raise ValueError(
                f"user_data: expected at most {max_user_data_size(self.user_timestamp, self.frame_id)} bytes "
                f"(a trailer holds 255 bytes in all), got {len(self.user_data)}"
            )

    def HasField(self, name: str) -> bool:
        """Whether ``name`` is set, as on livekit's protobuf ``FrameMetadata``."""
        if name not in ("user_timestamp", "frame_id", "user_data"):
            raise ValueError(f'expected "user_timestamp", "frame_id" or "user_data", got {name!r}')
        return bool(getattr(self, name))

    @property
    def is_empty(self) -> bool:
        """True when no field is set (such a frame carries no trailer)."""
        return not (self.user_timestamp or self.frame_id or self.user_data)


# The protocol's PacketTrailerFeature numbers (livekit.rtc's FrameMetadataFeature).
FEATURE_USER_TIMESTAMP = 0
FEATURE_FRAME_ID = 1
FEATURE_USER_DATA = 2


def restrict_to_features(metadata: FrameMetadata | None, features: frozenset[int]) -> FrameMetadata | None:
    """The part of ``metadata`` a track published with ``features`` sends (None if nothing)."""
    if metadata is None or not features:
        return None
    kept = FrameMetadata(
        metadata.user_timestamp if FEATURE_USER_TIMESTAMP in features else 0,
        metadata.frame_id if FEATURE_FRAME_ID in features else 0,
        metadata.user_data if FEATURE_USER_DATA in features else b"",
    )
    return None if kept.is_empty else kept


def max_user_data_size(user_timestamp: int, frame_id: int) -> int:
    """How many bytes of user data fit beside the other fields in one trailer."""
    fixed = _ENVELOPE_SIZE + (10 if user_timestamp else 0) + (6 if frame_id else 0)
    return _MAX_TRAILER_SIZE - fixed - 2


def build_trailer(metadata: FrameMetadata) -> bytes:
    """The trailer bytes for ``metadata`` (b"" when nothing is set)."""
    if metadata.is_empty:
        return b""
    tlvs = bytearray()
    if metadata.user_timestamp:
        tlvs += bytes((_TAG_USER_TIMESTAMP, 8)) + metadata.user_timestamp.to_bytes(8, "big")
    if metadata.frame_id:
        tlvs += bytes((_TAG_FRAME_ID, 4)) + metadata.frame_id.to_bytes(4, "big")
    if metadata.user_data:
        tlvs += bytes((_TAG_USER_DATA, len(metadata.user_data))) + metadata.user_data
    tlvs.append(len(tlvs) + _ENVELOPE_SIZE)
    return bytes(tlvs).translate(_FLIP) + TRAILER_MAGIC


def append_trailer(frame: bytes, metadata: FrameMetadata | None) -> bytes:
    """``frame`` followed by the trailer of ``metadata`` (unchanged when there is none)."""
    if metadata is None or metadata.is_empty:
        return frame
    return frame + build_trailer(metadata)


def split_trailer(frame: bytes) -> tuple[bytes, FrameMetadata | None]:
    """(the frame without its trailer, the metadata) — or (``frame``, None) when the
    frame ends in no valid trailer. Never raises on odd input."""
    size = len(frame)
    if size < _ENVELOPE_SIZE or frame[-4:] != TRAILER_MAGIC:
        return frame, None
    trailer_size = frame[-5] ^ 0xFF
    if trailer_size < _ENVELOPE_SIZE or trailer_size > size:
        return frame, None
    tlvs = bytes(frame[size - trailer_size : size - _ENVELOPE_SIZE]).translate(_FLIP)
    user_timestamp = frame_id = 0
    user_data = b""
    found = False
    position = 0
    while position + 2 <= len(tlvs):
        tag, length = tlvs[position], tlvs[position + 1]
        position += 2
        if position + length > len(tlvs):
            break
        value = tlvs[position : position + length]
        position += length
        if tag == _TAG_USER_TIMESTAMP and length == 8:
            user_timestamp, found = int.from_bytes(value, "big"), True
        elif tag == _TAG_FRAME_ID and length == 4:
            frame_id, found = int.from_bytes(value, "big"), True
        elif tag == _TAG_USER_DATA:
            user_data, found = value, True
    if not found:
        return frame, None
    return frame[: size - trailer_size], FrameMetadata(user_timestamp, frame_id, user_data)


_AV1_METADATA_TYPE_TRAILER = 31


def _av1_insert_trailer(temporal_unit: bytes, trailer: bytes) -> bytes:
    payload = leb128(_AV1_METADATA_TYPE_TRAILER) + trailer
    obu = bytes((OBU_METADATA << 3 | 0x02,)) + leb128(len(payload)) + payload
    offset = 0
    try:
        for obu_type, _, _, end in obu_spans(temporal_unit):
            if obu_type == OBU_TEMPORAL_DELIMITER:
                continue
            if obu_type != OBU_SEQUENCE_HEADER:
                break
            offset = end
    except ValueError:
        offset = 0
    return temporal_unit[:offset] + obu + temporal_unit[offset:]


def _av1_extract_trailer(temporal_unit: bytes) -> tuple[bytes, FrameMetadata | None]:
    try:
        spans = obu_spans(temporal_unit)
    except ValueError:
        return temporal_unit, None
    for obu_type, start, payload_start, end in spans:
        if obu_type != OBU_METADATA:
            continue
        try:
            metadata_type, value_start = read_leb128(temporal_unit, payload_start)
        except ValueError:
            continue
        if metadata_type != _AV1_METADATA_TYPE_TRAILER or value_start > end:
            continue
        rest, metadata = split_trailer(temporal_unit[value_start:end])
        if metadata is not None and not rest:
            return temporal_unit[:start] + temporal_unit[end:], metadata
    return temporal_unit, None


def attach_metadata(codec: str, frame: bytes, metadata: FrameMetadata | None) -> bytes:
    """``frame`` (the bitstream of ``codec``, "VP8"/"H264"/"VP9"/"AV1"/"H265") carrying
    ``metadata`` the way LiveKit's SDKs write it."""
    if metadata is None or metadata.is_empty:
        return frame
    if codec == "AV1":
        return _av1_insert_trailer(frame, build_trailer(metadata))
    return frame + build_trailer(metadata)


def detach_metadata(codec: str, frame: bytes) -> tuple[bytes, FrameMetadata | None]:
    """(the bitstream without its metadata, the metadata or None); never raises."""
    if codec == "AV1":
        return _av1_extract_trailer(frame)
    return split_trailer(frame)
