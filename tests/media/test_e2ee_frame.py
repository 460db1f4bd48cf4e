"""LiveKit's encrypted frame format and key rings, on bytes: layout, derivation, odd input."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from kitewire.media.e2ee_frame import (
    IV_SIZE,
    KDF_HKDF,
    KDF_PBKDF2,
    TAG_SIZE,
    FrameCryptoError,
    derive_key_set,
    encrypt_frame,
    open_frame,
    parse_encrypted_frame,
    ratchet_material,
    unencrypted_size,
)
from kitewire.media.e2ee_keys import DEFAULT_RATCHET_SALT, KeyOptions, KeyRing, KeyStore

SALT = DEFAULT_RATCHET_SALT
KEYS = derive_key_set(b"password", SALT)
IV = bytes(range(1, 13))
VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]) + bytes(range(40))
VP8_DELTA = bytes([0x31, 0x02, 0x00]) + bytes(range(40))
H264_IDR = (
    b"\x00\x00\x00\x01\x67\x42\xc0\x1f\xaa"  # SPS
    + b"\x00\x00\x00\x01\x68\xce\x3c\x80"  # PPS
    + b"\x00\x00\x01\x65\x88\x84"  # IDR slice, 3-byte start code
    + bytes(60)  # zeros: the encrypted part gets escaped, never a start code
)


def test_keys_are_pbkdf2_sha256_100000_iterations_of_the_salt() -> None:
    expected = hashlib.pbkdf2_hmac("sha256", b"password", SALT, 100_000, 16)
    assert KEYS.key == expected and KEYS.material == b"password"
    assert ratchet_material(b"password", SALT) == hashlib.pbkdf2_hmac("sha256", b"password", SALT, 100_000, 32)


def test_hkdf_derives_other_keys_and_an_unknown_kdf_is_refused() -> None:
    hkdf = derive_key_set(b"password", SALT, KDF_HKDF)
    assert len(hkdf.key) == 16 and hkdf.key != KEYS.key
    with pytest.raises(FrameCryptoError, match="key derivation function"):
        derive_key_set(b"password", SALT, 7)
    with pytest.raises(FrameCryptoError, match="non-empty"):
        derive_key_set(b"", SALT, KDF_PBKDF2)


def test_clear_header_per_codec() -> None:
    assert unencrypted_size("opus", b"\xfc\x01\x02") == 1
    assert unencrypted_size("VP8", VP8_KEY) == 10
    assert unencrypted_size("VP8", VP8_DELTA) == 3
    assert unencrypted_size("H264", H264_IDR) == H264_IDR.index(b"\x65\x88") + 2
    assert unencrypted_size("VP9", b"\x82\x49\x83") == 0
    # a header longer than a byte wraps, as the native cryptor's one-byte size does
    big_sei = b"\x00\x00\x00\x01\x06" + b"\x55" * 300 + b"\x00\x00\x00\x01\x65\x88\x84"
    assert unencrypted_size("H264", big_sei) == (big_sei.index(b"\x65\x88") + 2) & 0xFF


def test_vp8_layout_header_ciphertext_iv_trailer() -> None:
    sealed = encrypt_frame("VP8", VP8_DELTA, KEYS.key, 3, IV)
    assert sealed[:3] == VP8_DELTA[:3]
    assert sealed[-2:] == bytes([IV_SIZE, 3]) and sealed[-14:-2] == IV
    body = sealed[3:-14]
    assert len(body) == len(VP8_DELTA) - 3 + TAG_SIZE
    # AES-GCM with the clear header as associated data: anyone with the key can check it
    assert AESGCM(KEYS.key).decrypt(IV, body, VP8_DELTA[:3]) == VP8_DELTA[3:]
    frame = parse_encrypted_frame("VP8", sealed)
    assert frame.key_index == 3 and open_frame(frame, KEYS.key) == VP8_DELTA


def test_h264_is_escaped_and_its_header_counts_four_byte_start_codes() -> None:
    sealed = encrypt_frame("H264", H264_IDR, KEYS.key, 0, IV)
    normalized = H264_IDR.replace(b"\x00\x00\x01\x65", b"\x00\x00\x00\x01\x65")
    header = unencrypted_size("H264", normalized)
    assert sealed[:header] == normalized[:header]
    assert re.search(rb"\x00\x00[\x00-\x02]", sealed[header:]) is None  # no start code can appear
    assert open_frame(parse_encrypted_frame("H264", sealed), KEYS.key) == normalized


def test_a_wrong_key_does_not_open_and_a_changed_header_neither() -> None:
    sealed = encrypt_frame("VP8", VP8_KEY, KEYS.key, 0, IV)
    assert open_frame(parse_encrypted_frame("VP8", sealed), derive_key_set(b"other", SALT).key) is None
    tampered = bytes([sealed[0]]) + bytes([sealed[1] ^ 1]) + sealed[2:]
    assert open_frame(parse_encrypted_frame("VP8", tampered), KEYS.key) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "at least 2 bytes of trailer"),
        (b"\x31", "at least 2 bytes of trailer"),
        (b"\x31\x02\x00" + bytes(20) + b"\x0b\x00", "IV length 12"),
        (b"\x31\x02\x00" + bytes(10) + b"\x0c\x00", "at least 33 bytes"),
    ],
)
def test_odd_encrypted_frames_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(FrameCryptoError, match=message):
        parse_encrypted_frame("VP8", data)


def test_encrypting_odd_input_is_refused_clearly() -> None:
    with pytest.raises(FrameCryptoError, match="empty frame"):
        encrypt_frame("VP8", b"", KEYS.key, 0, IV)
    with pytest.raises(FrameCryptoError, match="at least 10 bytes of header"):
        encrypt_frame("VP8", VP8_KEY[:6], KEYS.key, 0, IV)
    with pytest.raises(FrameCryptoError, match="iv"):
        encrypt_frame("VP8", VP8_DELTA, KEYS.key, 0, IV[:8])
    with pytest.raises(FrameCryptoError, match="key_index"):
        encrypt_frame("VP8", VP8_DELTA, KEYS.key, 256, IV)


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(["VP8", "H264", "opus", "VP9"]), data=st.binary(max_size=200))
def test_any_bytes_parse_or_fail_with_a_value_error(codec: str, data: bytes) -> None:
    try:
        frame = parse_encrypted_frame(codec, data)
    except FrameCryptoError:
        return
    assert open_frame(frame, KEYS.key) is None


@settings(max_examples=100, deadline=None)
@given(codec=st.sampled_from(["VP8", "H264", "opus"]), payload=st.binary(min_size=12, max_size=300))
def test_every_frame_round_trips(codec: str, payload: bytes) -> None:
    frame = (b"\x00\x00\x00\x01\x65\x88" + payload) if codec == "H264" else payload
    sealed = encrypt_frame(codec, frame, KEYS.key, 5, IV)
    opened = open_frame(parse_encrypted_frame(codec, sealed), KEYS.key)
    assert opened == frame


OPTIONS = KeyOptions(ratchet_window_size=3, failure_tolerance=-1, key_ring_size=4)


def test_key_ring_follows_a_sender_that_ratcheted_within_the_window() -> None:
    ring = KeyRing(OPTIONS)
    ring.set(KEYS, 1)
    ahead = OPTIONS.ratchet(OPTIONS.ratchet(KEYS))
    result = ring.open(parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, ahead.key, 1, IV)))
    assert result.data == VP8_DELTA and result.ratcheted
    assert ring.get(1) == ahead  # the slot moved on to the sender's key
    too_far = ahead
    for _ in range(4):
        too_far = OPTIONS.ratchet(too_far)
    result = ring.open(parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, too_far.key, 1, IV)))
    assert result.data is None and ring.get(1) == ahead


def test_key_ring_refuses_unknown_slots_and_goes_invalid_past_the_tolerance() -> None:
    ring = KeyRing(KeyOptions(ratchet_window_size=0, failure_tolerance=1, key_ring_size=4))
    ring.set(KEYS, 0)
    with pytest.raises(FrameCryptoError, match="outside the key ring"):
        ring.open(parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, KEYS.key, 9, IV)))
    with pytest.raises(FrameCryptoError, match="no key in slot 2"):
        ring.open(parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, KEYS.key, 2, IV)))
    wrong = parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, derive_key_set(b"x", SALT).key, 0, IV))
    assert not ring.open(wrong).invalidated  # one failure is tolerated
    assert ring.open(wrong).invalidated and not ring.valid
    right = parse_encrypted_frame("VP8", encrypt_frame("VP8", VP8_DELTA, KEYS.key, 0, IV))
    assert ring.open(right).data is None  # an invalid ring tries nothing until a key is set
    ring.set(KEYS, 0)
    assert ring.open(right).data == VP8_DELTA
    with pytest.raises(ValueError, match="key_index"):
        ring.set(KEYS, 4)


def test_shared_key_reaches_every_participant_and_per_identity_keys_stay_apart() -> None:
    shared = KeyStore(KeyOptions(shared_key=True))
    shared.set_shared(KEYS, 0)
    alice = shared.ring("alice")
    assert alice is not None and alice.get(0) == KEYS
    other = derive_key_set(b"next", SALT)
    shared.set_shared(other, 1)
    assert alice.get(1) == other and alice.current_index == 1
    separate = KeyStore(KeyOptions())
    separate.set("alice", KEYS, 0)
    assert separate.ring("bob") is None
    assert separate.entries() == [("alice", 0, KEYS)]
