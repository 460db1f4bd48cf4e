"""LiveKit's end-to-end encrypted frame format (the native SDK's libwebrtc frame cryptor).

An encrypted frame, as livekit's Rust/Python SDK writes and reads it::

    header (clear) | AES-GCM(payload, aad=header) incl. 16-byte tag | IV (12) | 12 | key index

The clear header lets the SFU and the depacketizer see what they need: 1 byte for
audio (the Opus TOC), 10 bytes of a VP8 key frame and 3 of a VP8 delta frame, for H264
(and H265) everything up to and including the first two bytes of the first slice NAL
unit (so parameter sets stay readable), 0 for other codecs. For H264/H265 the part
after the header is escaped as RBSP (emulation prevention bytes), so no start code
can appear in it; the receiver unescapes before opening.

Keys are 128-bit AES keys derived from the raw key material with PBKDF2-HMAC-SHA256
(100 000 iterations, the ratchet salt) or HKDF-SHA256 (info: 128 zero bytes); a ratchet
step derives 256 bits of new material from the old the same way.

Every function here is pure and works on bytes; malformed input raises
:class:`FrameCryptoError` (a ValueError) saying what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = [
    "IV_SIZE",
    "KDF_HKDF",
    "KDF_PBKDF2",
    "TAG_SIZE",
    "TRAILER_SIZE",
    "EncryptedFrame",
    "FrameCryptoError",
    "FrameTransform",
    "KeySet",
    "derive_key_set",
    "encrypt_frame",
    "open_frame",
    "parse_encrypted_frame",
    "ratchet_material",
    "unencrypted_size",
]

KDF_PBKDF2 = 0
KDF_HKDF = 1
IV_SIZE = 12
TAG_SIZE = 16
TRAILER_SIZE = 2  # IV length, key index
PBKDF2_ITERATIONS = 100_000
_AES_KEY_BYTES = 16
_MATERIAL_BYTES = 32
_HKDF_INFO = bytes(128)
_MAX_KEY_INDEX = 255

_ESCAPE = re.compile(rb"\x00\x00(?=[\x00-\x03])")
_UNESCAPE = re.compile(rb"\x00\x00\x03")
_START_CODE = re.compile(rb"\x00\x00\x01")
_H264_SLICE_TYPES = frozenset((1, 5))
_H265_SLICE_TYPES = frozenset((*range(10), *range(16, 22)))


FrameTransform = Callable[[str, bytes], "bytes | None"]
"""What the pipelines call on each encoded frame: (codec, frame) -> the frame to use, or None to drop it."""


class FrameCryptoError(ValueError):
    """A frame that cannot be encrypted or is not a well-formed encrypted frame."""


@dataclass(frozen=True)
class KeySet:
    """One key ring slot: the raw key ``material`` and the AES ``key`` derived from it."""

    material: bytes
    key: bytes


def _derive(secret: bytes, salt: bytes, length: int, kdf: int) -> bytes:
    if kdf == KDF_PBKDF2:
        return PBKDF2HMAC(hashes.SHA256(), length, salt, PBKDF2_ITERATIONS).derive(secret)
    if kdf == KDF_HKDF:
        return HKDF(hashes.SHA256(), length, salt, _HKDF_INFO).derive(secret)
    raise FrameCryptoError(f"key derivation function: expected {KDF_PBKDF2} (PBKDF2) or {KDF_HKDF} (HKDF), got {kdf}")


def derive_key_set(material: bytes, salt: bytes, kdf: int = KDF_PBKDF2) -> KeySet:
    """The slot for raw key ``material`` (any length, at least one byte)."""
    if not isinstance(material, (bytes, bytearray)) or not material:
        raise FrameCryptoError(f"key material: expected non-empty bytes, got {material!r:.40}")
    material = bytes(material)
    return KeySet(material, _derive(material, bytes(salt), _AES_KEY_BYTES, kdf))


def ratchet_material(material: bytes, salt: bytes, kdf: int = KDF_PBKDF2) -> bytes:
    """The next key material of a ratchet (256 bits derived from ``material``)."""
    return _derive(bytes(material), bytes(salt), _MATERIAL_BYTES, kdf)


def _is_nal_codec(codec: str) -> bool:
    return codec in ("H264", "H265")


def unencrypted_size(codec: str, data: bytes) -> int:
    """How many leading bytes of a ``codec`` frame stay clear ("opus", "VP8", "H264", ...)."""
    if codec.lower() == "opus":
        return 1
    if codec == "VP8":
        if not data:
            return 0
        return 10 if data[0] & 0x01 == 0 else 3  # the P bit: 0 on a key frame
    if _is_nal_codec(codec):
        slice_types = _H264_SLICE_TYPES if codec == "H264" else _H265_SLICE_TYPES
        for match in _START_CODE.finditer(data):
            start = match.end()
            if start >= len(data):
                break
            nal_type = data[start] & 0x1F if codec == "H264" else (data[start] >> 1) & 0x3F
            if nal_type in slice_types:
                # the native cryptor holds this size in one byte: a longer header (a big
                # SEI in front) wraps around, and both ends must agree on where it ends
                return (start + 2) & 0xFF
        return 0
    return 0


def _four_byte_start_codes(data: bytes) -> bytes:
    # bytes.find over the few start codes of a frame: a regex with a look-behind is 100x slower
    pieces: list[bytes] = []
    copied = 0
    position = data.find(b"\x00\x00\x01")
    while position >= 0:
        if position == 0 or data[position - 1] != 0:
            pieces += (data[copied:position], b"\x00")
            copied = position
        position = data.find(b"\x00\x00\x01", position + 3)
    if not pieces:
        return bytes(data)
    pieces.append(data[copied:])
    return b"".join(pieces)


def encrypt_frame(codec: str, data: bytes, key: bytes, key_index: int, iv: bytes) -> bytes:
    """``data`` (one encoded frame) in LiveKit's encrypted frame format.

    ``iv`` must be 12 bytes never used before with ``key``; ``key_index`` (0..255) goes
    into the trailer so the receiver knows which slot of its key ring opens it."""
    if not data:
        raise FrameCryptoError("frame: expected at least one byte, got an empty frame")
    if len(iv) != IV_SIZE:
        raise FrameCryptoError(f"iv: expected {IV_SIZE} bytes, got {len(iv)}")
    if not 0 <= key_index <= _MAX_KEY_INDEX:
        raise FrameCryptoError(f"key_index: expected 0..{_MAX_KEY_INDEX}, got {key_index}")
    if _is_nal_codec(codec):
        # the receiver computes the clear header on its depacketizer's output, which has a
        # 4-byte start code before every NAL unit: the header (and the AAD) must match it
        data = _four_byte_start_codes(data)
    clear = unencrypted_size(codec, data)
    if clear > len(data):
        raise FrameCryptoError(f"{codec} frame: expected at least {clear} bytes of header, got {len(data)} bytes")
    header = bytes(data[:clear])
    sealed = AESGCM(key).encrypt(iv, bytes(data[clear:]), header)
    body = sealed + iv + bytes((IV_SIZE, key_index))
    if _is_nal_codec(codec):
        body = _ESCAPE.sub(b"\x00\x00\x03", body)
    return header + body


@dataclass(frozen=True)
class EncryptedFrame:
    """The parts of a received encrypted frame."""

    header: bytes
    sealed: bytes  # ciphertext + tag
    iv: bytes
    key_index: int


def parse_encrypted_frame(codec: str, data: bytes) -> EncryptedFrame:
    """Split a received frame into its clear header, sealed payload, IV and key index."""
    if len(data) < TRAILER_SIZE:
        raise FrameCryptoError(f"encrypted frame: expected at least {TRAILER_SIZE} bytes of trailer, got {len(data)}")
    if data[-2] != IV_SIZE:
        raise FrameCryptoError(f"encrypted frame trailer: expected IV length {IV_SIZE}, got {data[-2]}")
    clear = unencrypted_size(codec, data)
    body = bytes(data[clear:])
    if _is_nal_codec(codec) and b"\x00\x00\x03" in body[:-1]:
        body = _UNESCAPE.sub(b"\x00\x00", body)
    if len(body) < TAG_SIZE + IV_SIZE + TRAILER_SIZE:
        raise FrameCryptoError(
            f"encrypted {codec} frame: expected at least {clear + TAG_SIZE + IV_SIZE + TRAILER_SIZE} bytes "
            f"(header, tag, IV, trailer), got {len(data)}"
        )
    iv_end = len(body) - TRAILER_SIZE
    return EncryptedFrame(
        header=bytes(data[:clear]),
        sealed=body[: iv_end - IV_SIZE],
        iv=body[iv_end - IV_SIZE : iv_end],
        key_index=body[-1],
    )


def open_frame(frame: EncryptedFrame, key: bytes) -> bytes | None:
    """The plain frame (header + payload), or None when ``key`` does not open it."""
    try:
        payload = AESGCM(key).decrypt(frame.iv, frame.sealed, frame.header)
    except InvalidTag:
        return None
    return frame.header + payload
