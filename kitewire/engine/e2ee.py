"""End-to-end encryption of one engine session: the key store and a frame cryptor per track.

The encode and decode pipelines call a :class:`TrackCryptor` between the encoder and
the packetizer (``encrypt``) and between frame assembly / the jitter buffer and the
decoder (``decrypt``), in their worker threads. Frames go in LiveKit's format
(:mod:`kitewire.media.e2ee_frame`) with keys from :mod:`kitewire.media.e2ee_keys`.

A frame that cannot be decrypted is dropped (never handed to a decoder), and the
cryptor's state change (livekit's EncryptionState numbers) is reported once per change
to ``on_state(identity, state)`` on the event loop. Keys arrive already derived (the
application's side derives them where livekit's API returns them), so nothing here
runs a key derivation on the event loop; only ratchet steps tried on a failed frame are
derived, in the worker thread that opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from livekit.protocol import models

from kitewire.frames.enums import EncryptionState
from kitewire.media.e2ee_frame import FrameCryptoError, KeySet, encrypt_frame, parse_encrypted_frame
from kitewire.media.e2ee_keys import KeyOptions, KeyStore

__all__ = ["E2eeConfig", "E2eeSession", "TrackCryptor"]

logger = logging.getLogger("kitewire.engine")


@dataclass(frozen=True)
class E2eeConfig:
    """A room's encryption as the engine gets it (picklable: it crosses to the media process).

    ``keys`` are (identity or None for the shared key, key index, derived keys)."""

    options: KeyOptions
    encryption_type: int = models.Encryption.GCM
    enabled: bool = True
    keys: tuple[tuple[str | None, int, KeySet], ...] = ()


def _zero_free(counter: int) -> bytes:
    """8 bytes unique per ``counter`` (mod 255**8) with no zero byte.

    An IV is a random prefix and a frame counter. No zero bytes: an H264 frame's
    encrypted part is escaped as RBSP, and the native receiver reads the IV from the
    escaped frame, so an IV holding ``00 00`` would reach it changed."""
    digits = bytearray(8)
    for place in range(7, -1, -1):
        counter, digit = divmod(counter, 255)
        digits[place] = digit + 1
    return bytes(digits)


@dataclass
class TrackCryptor:
    """The frame cryptor of one track (local: encrypts; remote: decrypts)."""

    session: E2eeSession
    track_sid: str
    participant_sid: str
    local: bool
    enabled: bool = True
    key_index: int = 0
    state: int = EncryptionState.NEW
    _iv_prefix: bytes = field(default_factory=lambda: os.urandom(4).replace(b"\x00", b"\x01"))
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(int.from_bytes(os.urandom(4))))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def identity(self) -> str:
        """The participant whose keys this track uses."""
        return self.session.identity_of(self.participant_sid)

    def _report(self, state: int) -> None:
        with self._lock:
            if state == self.state:
                return
            self.state = state
        self.session.report(self.identity, state)

    def encrypt(self, codec: str, data: bytes) -> bytes | None:
        """``data`` encrypted with this track's key slot; None (drop it) with no key."""
        session = self.session
        if not (session.enabled and self.enabled) or not data:
            return data
        ring = session.store.ring(self.identity)
        keys = ring.get(self.key_index) if ring is not None else None
        if keys is None:
            self._report(EncryptionState.MISSING_KEY)
            return None
        iv = self._iv_prefix + _zero_free(next(self._counter))
        try:
            sealed = encrypt_frame(codec, data, keys.key, self.key_index, iv)
        except FrameCryptoError as error:
            logger.debug("not encrypting a %s frame: %s", codec, error)
            self._report(EncryptionState.ENCRYPTION_FAILED)
            return None
        self._report(EncryptionState.OK)
        return sealed

    def decrypt(self, codec: str, data: bytes) -> bytes | None:
        """The plain frame, or None when it cannot be decrypted (the state says why)."""
        session = self.session
        if not (session.enabled and self.enabled) or not session.track_encrypted(self.track_sid):
            return data
        ring = session.store.ring(self.identity)
        if ring is None:
            self._report(EncryptionState.MISSING_KEY)
            return None
        try:
            frame = parse_encrypted_frame(codec, data)
            if ring.get(frame.key_index) is None:
                self._report(EncryptionState.MISSING_KEY)
                return None
            result = ring.open(frame)
        except FrameCryptoError as error:
            logger.debug("dropping a %s frame of %s: %s", codec, self.track_sid, error)
            self._report(EncryptionState.DECRYPTION_FAILED)
            return None
        if result.data is None:
            self._report(EncryptionState.DECRYPTION_FAILED)
            return None
        self._report(EncryptionState.KEY_RATCHETED if result.ratcheted else EncryptionState.OK)
        return result.data


class E2eeSession:
    """One session's keys, cryptors and the participants' identities and track encryption."""

    def __init__(
        self, config: E2eeConfig, on_state: Callable[[str, int], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.config = config
        self.enabled = config.enabled
        self.store = KeyStore(config.options)
        for identity, index, keys in config.keys:
            self.set_key(identity, index, keys)
        self._on_state = on_state
        self._loop = loop
        self._identities: dict[str, str] = {}  # participant sid -> identity
        self._encryption: dict[str, int] = {}  # track sid -> Encryption.Type
        self.cryptors: dict[str, TrackCryptor] = {}

    def set_key(self, identity: str | None, key_index: int, keys: KeySet) -> None:
        """Set a slot of the shared key (identity None) or of one participant's key."""
        if identity is None:
            self.store.set_shared(keys, key_index)
        else:
            self.store.set(identity, keys, key_index)

    def learn(self, participants: Iterable[models.ParticipantInfo]) -> None:
        """Identities and track encryption from a join or a participant update."""
        for info in participants:
            if info.state == models.ParticipantInfo.DISCONNECTED:
                # kept only for the participants present, so the maps stay bounded by the room
                self._identities.pop(info.sid, None)
                for track in info.tracks:
                    self._encryption.pop(track.sid, None)
                continue
            self._identities[info.sid] = info.identity
            for track in info.tracks:
                self._encryption[track.sid] = track.encryption

    def identity_of(self, participant_sid: str) -> str:
        """A participant's identity (the sid itself while unknown)."""
        return self._identities.get(participant_sid, participant_sid)

    def track_encrypted(self, track_sid: str) -> bool:
        """Whether a remote track's frames are to be decrypted (True while its info is unknown)."""
        return self._encryption.get(track_sid, self.config.encryption_type) != models.Encryption.NONE

    def cryptor(self, track_sid: str, participant_sid: str, *, local: bool) -> TrackCryptor:
        """The cryptor of a newly published or received track."""
        cryptor = TrackCryptor(self, track_sid, participant_sid, local)
        self.cryptors[track_sid] = cryptor
        return cryptor

    def forget(self, track_sid: str) -> None:
        """A track ended."""
        self.cryptors.pop(track_sid, None)

    def update_cryptor(self, track_sid: str, enabled: bool | None, key_index: int | None) -> None:
        """FrameCryptor.set_enabled / set_key_index."""
        cryptor = self.cryptors.get(track_sid)
        if cryptor is None:
            return
        if enabled is not None:
            cryptor.enabled = enabled
        if key_index is not None:
            cryptor.key_index = key_index

    def report(self, identity: str, state: int) -> None:
        """A cryptor's state changed (any thread): tell the listener on the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self._on_state, identity, state)
