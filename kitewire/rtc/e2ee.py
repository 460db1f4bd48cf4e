"""End-to-end encryption with livekit.rtc's names: E2EEOptions, KeyProvider, E2EEManager, FrameCryptor.

Frames are encrypted in LiveKit's format (AES-GCM, keys derived with PBKDF2 or HKDF from
the ratchet salt, the IV and key index in a trailer; see
:mod:`kitewire.media.e2ee_frame`), so kitewire and the official SDKs in one encrypted
room see each other's media, and the server forwards only ciphertext.

The key provider's methods return at once as livekit's do: keys are derived here (in
the caller's thread) and kept in a mirror of the engine's key store, then sent to the
engine, which encrypts and decrypts in its pipelines (in the media process by default).
A key ratcheted by the engine on its own (a frame that opened only with a ratchet step)
is not seen by ``export_key``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from livekit.protocol import models

from kitewire.engine.e2ee import E2eeConfig
from kitewire.engine.handle import EngineHandle
from kitewire.frames.enums import EncryptionState, EncryptionType, KeyDerivationFunction
from kitewire.media.e2ee_frame import IV_SIZE, TAG_SIZE, EncryptedFrame, FrameCryptoError, KeySet
from kitewire.media.e2ee_keys import DEFAULT_RATCHET_SALT, KeyOptions, KeyRing, KeyStore

__all__ = [
    "DEFAULT_FAILURE_TOLERANCE",
    "DEFAULT_KEY_RING_SIZE",
    "DEFAULT_RATCHET_SALT",
    "DEFAULT_RATCHET_WINDOW_SIZE",
    "DataCryptor",
    "E2EEManager",
    "E2EEOptions",
    "EncryptionState",
    "EncryptionType",
    "FrameCryptor",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
]

logger = logging.getLogger("kitewire.rtc")

DEFAULT_RATCHET_WINDOW_SIZE = 16
DEFAULT_FAILURE_TOLERANCE = -1
DEFAULT_KEY_RING_SIZE = 16
# participants whose encryption status is remembered (participant_encryption_status_changed)
_MAX_TRACKED_PARTICIPANTS = 10_000

#: runs an engine request on the room's current session (nothing when not connected)
EngineRequest = Callable[[Callable[[EngineHandle], Coroutine[Any, Any, Any]]], None]


@dataclass
class KeyProviderOptions:
    """How keys are derived and tried, as in livekit.rtc.

    ``shared_key`` set: every participant uses that key (shared-key mode); None: keys are
    set per participant with :meth:`KeyProvider.set_key`."""

    shared_key: bytes | None = None
    ratchet_salt: bytes = DEFAULT_RATCHET_SALT
    ratchet_window_size: int = DEFAULT_RATCHET_WINDOW_SIZE
    failure_tolerance: int = DEFAULT_FAILURE_TOLERANCE
    key_ring_size: int = DEFAULT_KEY_RING_SIZE
    key_derivation_function: int = KeyDerivationFunction.PBKDF2


@dataclass
class E2EEOptions:
    """A room's end-to-end encryption (``RoomOptions(encryption=...)`` or ``e2ee=``)."""

    key_provider_options: KeyProviderOptions = field(default_factory=KeyProviderOptions)
    encryption_type: int = EncryptionType.GCM


def _key_options(options: KeyProviderOptions) -> KeyOptions:
    if options.key_derivation_function not in (KeyDerivationFunction.PBKDF2, KeyDerivationFunction.HKDF):
        raise ValueError(f"key_derivation_function: expected PBKDF2 or HKDF, got {options.key_derivation_function!r}")
    return KeyOptions(
        shared_key=options.shared_key is not None,
        ratchet_salt=bytes(options.ratchet_salt),
        ratchet_window_size=options.ratchet_window_size,
        failure_tolerance=options.failure_tolerance,
        key_ring_size=options.key_ring_size,
        key_derivation_function=int(options.key_derivation_function),
    )


async def _set_key(engine: EngineHandle, *, identity: str | None, key_index: int, keys: KeySet) -> None:
    await engine.set_e2ee_key(identity, key_index, keys)


async def _update_cryptor(engine: EngineHandle, *, track_sid: str, enabled: bool, key_index: int) -> None:
    await engine.update_frame_cryptor(track_sid, enabled, key_index)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError(f"key: expected non-empty bytes, got {key!r:.40}")
    return bytes(key)


class KeyProvider:
    """The room's keys: a shared key or one per participant, each in a ring of ``key_ring_size`` slots."""

    def __init__(self, options: KeyProviderOptions, request: EngineRequest) -> None:
        self._options = options
        self._store = KeyStore(_key_options(options))
        self._request = request
        if options.shared_key is not None:
            self.set_shared_key(options.shared_key, 0)

    @property
    def options(self) -> KeyProviderOptions:
        """The options the room was connected with."""
        return self._options

    def _index(self, key_index: int) -> int:
        size = self._store.options.key_ring_size
        if isinstance(key_index, bool) or not isinstance(key_index, int) or not 0 <= key_index < size:
            raise ValueError(f"key_index: expected 0..{size - 1}, got {key_index!r}")
        return key_index

    def _send(self, identity: str | None, key_index: int, ring: KeyRing | None) -> None:
        keys = ring.get(key_index) if ring is not None else None
        if keys is not None:
            self._request(lambda engine: engine.set_e2ee_key(identity, key_index, keys))

    def set_shared_key(self, key: bytes, key_index: int) -> None:
        """Set the shared key in slot ``key_index`` (it becomes the slot used to encrypt)."""
        index = self._index(key_index)
        self._store.set_shared(self._store.options.key_set(_check_key(key)), index)
        self._send(None, index, self._store.shared())

    def export_shared_key(self, key_index: int) -> bytes:
        """The shared key material in slot ``key_index`` (empty when unset)."""
        ring = self._store.shared()
        keys = ring.get(self._index(key_index)) if ring is not None else None
        return keys.material if keys is not None else b""

    def ratchet_shared_key(self, key_index: int) -> bytes:
        """Ratchet the shared key in slot ``key_index``; the new key material (empty when unset)."""
        index = self._index(key_index)
        ring = self._store.shared()
        stepped = ring.ratchet(index) if ring is not None else None
        if stepped is None:
            return b""
        self._store.set_shared(stepped, index)
        self._send(None, index, ring)
        return stepped.material

    def set_key(self, participant_identity: str, key: bytes, key_index: int) -> None:
        """Set ``participant_identity``'s key in slot ``key_index`` (ours: the key we encrypt with)."""
        index = self._index(key_index)
        self._store.set(participant_identity, self._store.options.key_set(_check_key(key)), index)
        self._send(participant_identity, index, self._store.peek(participant_identity))

    def export_key(self, participant_identity: str, key_index: int) -> bytes:
        """``participant_identity``'s key material in slot ``key_index`` (empty when unset)."""
        ring = self._store.peek(participant_identity)
        keys = ring.get(self._index(key_index)) if ring is not None else None
        return keys.material if keys is not None else b""

    def ratchet_key(self, participant_identity: str, key_index: int) -> bytes:
        """Ratchet ``participant_identity``'s key in slot ``key_index``; the new material (empty when unset)."""
        index = self._index(key_index)
        ring = self._store.peek(participant_identity)
        stepped = ring.ratchet(index) if ring is not None else None
        if stepped is None:
            return b""
        self._send(participant_identity, index, ring)
        return stepped.material

    def _config(self, encryption_type: int, enabled: bool) -> E2eeConfig:
        return E2eeConfig(self._store.options, encryption_type, enabled, tuple(self._store.entries()))

    def _replay(self) -> None:
        for identity, index, keys in self._store.entries():
            self._request(functools.partial(_set_key, identity=identity, key_index=index, keys=keys))


class FrameCryptor:
    """The encryption of one track: ours (encrypting) or a remote participant's (decrypting)."""

    def __init__(
        self, manager: E2EEManager, participant_identity: str, track_sid: str, key_index: int, enabled: bool
    ) -> None:
        self._manager = manager
        self._participant_identity = participant_identity
        self._track_sid = track_sid
        self._key_index = key_index
        self._enabled = enabled

    @property
    def participant_identity(self) -> str:
        """Whose track this is."""
        return self._participant_identity

    @property
    def track_sid(self) -> str:
        """The track's sid."""
        return self._track_sid

    @property
    def key_index(self) -> int:
        """The key ring slot the track is encrypted with."""
        return self._key_index

    @property
    def enabled(self) -> bool:
        """False: the track's frames go (or are taken) as they are."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Turn this track's encryption on or off."""
        self._enabled = bool(enabled)
        self._manager._update_cryptor(self._track_sid, enabled=self._enabled)

    def set_key_index(self, key_index: int) -> None:
        """Encrypt this (local) track with key ring slot ``key_index`` from now on."""
        provider = self._manager.key_provider
        if provider is not None:
            provider._index(key_index)
        self._key_index = key_index
        self._manager._update_cryptor(self._track_sid, key_index=key_index)


class E2EEManager:
    """A room's end-to-end encryption: its key provider and its tracks' frame cryptors."""

    def __init__(
        self,
        options: E2EEOptions | None,
        request: EngineRequest,
        tracks: Callable[[], list[tuple[str, str]]] = list,
    ) -> None:
        self.options = options
        self._request = request
        self._tracks = tracks
        self._enabled = options is not None
        self._key_provider = KeyProvider(options.key_provider_options, request) if options is not None else None
        self._cryptor_settings: dict[str, tuple[bool, int]] = {}  # track sid -> (enabled, key index)
        self._encrypted: dict[str, bool] = {}  # identity -> all its tracks encrypted, as last reported

    @property
    def key_provider(self) -> KeyProvider | None:
        """The room's keys (None when the room is not encrypted)."""
        return self._key_provider

    @property
    def enabled(self) -> bool:
        """Whether media is encrypted and decrypted."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Turn end-to-end encryption on or off for every track."""
        self._enabled = bool(enabled)
        self._request(lambda engine: engine.set_e2ee_enabled(self._enabled))

    def frame_cryptors(self) -> list[FrameCryptor]:
        """One FrameCryptor per encrypted track: ours and the subscribed ones."""
        if self.options is None:
            return []
        cryptors = []
        for identity, track_sid in self._tracks():
            enabled, key_index = self._cryptor_settings.get(track_sid, (True, 0))
            cryptors.append(FrameCryptor(self, identity, track_sid, key_index, enabled))
        return cryptors

    def _encryption_changed(self, info: models.ParticipantInfo) -> bool | None:
        """A participant's new encryption status (it has tracks, all encrypted) if it changed, else None."""
        encrypted = bool(info.tracks) and all(track.encryption != models.Encryption.NONE for track in info.tracks)
        if self._encrypted.get(info.identity, False) == encrypted:
            return None
        if len(self._encrypted) >= _MAX_TRACKED_PARTICIPANTS and info.identity not in self._encrypted:
            return None
        self._encrypted[info.identity] = encrypted
        return encrypted

    def _update_cryptor(self, track_sid: str, *, enabled: bool | None = None, key_index: int | None = None) -> None:
        old_enabled, old_index = self._cryptor_settings.get(track_sid, (True, 0))
        self._cryptor_settings[track_sid] = (
            old_enabled if enabled is None else enabled,
            old_index if key_index is None else key_index,
        )
        self._request(lambda engine: engine.update_frame_cryptor(track_sid, enabled, key_index))

    def _config(self) -> E2eeConfig | None:
        """What the engine gets at join (None: not encrypted)."""
        if self.options is None or self._key_provider is None:
            return None
        return self._key_provider._config(int(self.options.encryption_type), self._enabled)

    def _rejoined(self) -> None:
        """A rejoined session: give it the keys and settings of now, not those of the first join."""
        if self._key_provider is None:
            return
        self._key_provider._replay()
        self._request(lambda engine: engine.set_e2ee_enabled(self._enabled))
        for track_sid, (enabled, key_index) in self._cryptor_settings.items():
            self._request(functools.partial(_update_cryptor, track_sid=track_sid, enabled=enabled, key_index=key_index))


# what the native SDK puts inside an EncryptedPacket (the rest of a DataPacket stays clear)
_ENCRYPTABLE = frozenset(models.EncryptedPacketPayload.DESCRIPTOR.fields_by_name)


class DataCryptor:
    """Data packets of an encrypted room, as the native SDK seals them: the packet's value
    (user data, RPC, stream parts) serialized as an EncryptedPacketPayload, AES-GCM with
    the sender's current key (no associated data), in an EncryptedPacket with its IV and
    key index. Runs on the event loop: no key derivation (no ratchet steps tried)."""

    def __init__(self, manager: E2EEManager, local_identity: Callable[[], str]) -> None:
        self._manager = manager
        self._local_identity = local_identity

    def seal(self, packet: models.DataPacket) -> None:
        """Encrypt ``packet``'s value in place; raises ValueError without a key to do it."""
        provider = self._manager.key_provider
        kind = packet.WhichOneof("value")
        if provider is None or not self._manager.enabled or kind not in _ENCRYPTABLE:
            return
        ring = provider._store.ring(self._local_identity())
        keys = ring.get(-1) if ring is not None else None
        if ring is None or keys is None:
            raise ValueError("the room is encrypted and no key is set to encrypt data with")
        payload = models.EncryptedPacketPayload()
        getattr(payload, kind).CopyFrom(getattr(packet, kind))
        iv = os.urandom(IV_SIZE)
        sealed = AESGCM(keys.key).encrypt(iv, payload.SerializeToString(), None)
        packet.encrypted_packet.CopyFrom(
            models.EncryptedPacket(
                encryption_type=models.Encryption.GCM, iv=iv, key_index=ring.current_index, encrypted_value=sealed
            )
        )

    def open(self, packet: models.DataPacket, sender: str) -> bool:
        """Replace ``packet``'s EncryptedPacket by its value; False (packet unchanged) if it does not open."""
        provider = self._manager.key_provider
        encrypted = packet.encrypted_packet
        ring = provider._store.ring(sender) if provider is not None else None
        if ring is None or len(encrypted.iv) != IV_SIZE or len(encrypted.encrypted_value) < TAG_SIZE:
            return False
        frame = EncryptedFrame(b"", bytes(encrypted.encrypted_value), bytes(encrypted.iv), encrypted.key_index)
        try:
            opened = ring.open(frame, ratchet=False).data
            if opened is None:
                return False
            payload = models.EncryptedPacketPayload.FromString(opened)
        except (FrameCryptoError, ValueError) as error:  # protobuf's DecodeError is a ValueError
            logger.debug("an encrypted data packet from %s does not open: %s", sender, error)
            return False
        kind = payload.WhichOneof("value")
        if kind is None:
            return False
        getattr(packet, kind).CopyFrom(getattr(payload, kind))
        return True
