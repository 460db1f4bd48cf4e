"""Enumerations numbered exactly like livekit's protobuf enums.

livekit exposes its enums as protobuf ``EnumTypeWrapper`` objects: members are
plain ``int`` values reached as attributes (``VideoBufferType.RGBA``), and the
wrapper offers ``Name``, ``Value``, ``keys``, ``values`` and ``items``. Code
written against livekit uses exactly that surface, so each enum here is a
class whose members are plain ints and whose lookups are classmethods; no
protobuf runtime is involved.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias


class EnumTypeWrapper:
    """Base class giving a class of ``NAME = int`` members a protobuf-like API.

    Subclasses declare members as upper-case class attributes holding ints.
    Members stay plain ``int`` values, so they compare equal to, and can be
    replaced by, the numbers livekit uses.
    """

    ValueType: TypeAlias = int
    _by_name: ClassVar[dict[str, int]] = {}
    _by_value: ClassVar[dict[int, str]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        members = {
            name: value
            for name, value in vars(cls).items()
            if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
        }
        cls._by_name = members
        # first name wins for a value, like protobuf's Name() on aliases
        by_value: dict[int, str] = {}
        for name, value in members.items():
            by_value.setdefault(value, name)
        cls._by_value = by_value

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is an enum namespace, use its members directly")

    @classmethod
    def Name(cls, number: int) -> str:
        """Return the member name for ``number``; ValueError when there is none."""
        try:
            return cls._by_value[number]
        except (KeyError, TypeError):
            raise ValueError(
                f"Enum {cls.__name__} has no name defined for value {number!r}; expected one of {sorted(cls._by_value)}"
            ) from None

    @classmethod
    def Value(cls, name: str) -> int:
        """Return the number of the member called ``name``; ValueError when unknown."""
        try:
            return cls._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"Enum {cls.__name__} has no value defined for name {name!r}; expected one of {list(cls._by_name)}"
            ) from None

    @classmethod
    def keys(cls) -> list[str]:
        """Member names in declaration order."""
        return list(cls._by_name)

    @classmethod
    def values(cls) -> list[int]:
        """Member numbers in declaration order."""
        return list(cls._by_name.values())

    @classmethod
    def items(cls) -> list[tuple[str, int]]:
        """(name, number) pairs in declaration order."""
        return list(cls._by_name.items())


class VideoBufferType(EnumTypeWrapper):
    """Pixel layouts of a :class:`~kitewire.frames.VideoFrame` (livekit numbering)."""

    RGBA = 0
    ABGR = 1
    ARGB = 2
    BGRA = 3
    RGB24 = 4
    I420 = 5
    I420A = 6
    I422 = 7
    I444 = 8
    I010 = 9
    NV12 = 10


class VideoRotation(EnumTypeWrapper):
    """Clockwise rotation a receiver should apply to show a frame upright."""

    VIDEO_ROTATION_0 = 0
    VIDEO_ROTATION_90 = 1
    VIDEO_ROTATION_180 = 2
    VIDEO_ROTATION_270 = 3


class TrackSource(EnumTypeWrapper):
    """Where a published track comes from."""

    SOURCE_UNKNOWN = 0
    SOURCE_CAMERA = 1
    SOURCE_MICROPHONE = 2
    SOURCE_SCREENSHARE = 3
    SOURCE_SCREENSHARE_AUDIO = 4


class TrackKind(EnumTypeWrapper):
    """Media kind of a track."""

    KIND_UNKNOWN = 0
    KIND_AUDIO = 1
    KIND_VIDEO = 2


class VideoCodec(EnumTypeWrapper):
    """Video codecs, numbered like livekit's ``VideoCodec``."""

    VP8 = 0
    H264 = 1
    AV1 = 2
    VP9 = 3
    H265 = 4


class VideoQuality(EnumTypeWrapper):
    """Simulcast quality layers."""

    VIDEO_QUALITY_LOW = 0
    VIDEO_QUALITY_MEDIUM = 1
    VIDEO_QUALITY_HIGH = 2


class EncryptionType(EnumTypeWrapper):
    """End-to-end encryption of a room's media (livekit's e2ee EncryptionType)."""

    NONE = 0
    GCM = 1
    CUSTOM = 2


class EncryptionState(EnumTypeWrapper):
    """A frame cryptor's state, as ``e2ee_state_changed`` reports it."""

    NEW = 0
    OK = 1
    ENCRYPTION_FAILED = 2
    DECRYPTION_FAILED = 3
    MISSING_KEY = 4
    KEY_RATCHETED = 5
    INTERNAL_ERROR = 6


class KeyDerivationFunction(EnumTypeWrapper):
    """How AES keys are derived from key material (the ratchet uses the same)."""

    PBKDF2 = 0
    HKDF = 1


__all__ = [
    "EncryptionState",
    "EncryptionType",
    "EnumTypeWrapper",
    "KeyDerivationFunction",
    "TrackKind",
    "TrackSource",
    "VideoBufferType",
    "VideoCodec",
    "VideoQuality",
    "VideoRotation",
]
