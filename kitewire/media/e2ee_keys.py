"""Key rings for end-to-end encryption, as the native SDK's key provider keeps them.

A :class:`KeyRing` is one participant's slots (``key_ring_size`` of them, 16 by default)
of :class:`~kitewire.media.e2ee_frame.KeySet`. :meth:`KeyRing.open` tries the slot a
frame names and, when that fails, up to ``ratchet_window_size`` ratchet steps ahead of
it (a sender that ratcheted before telling us); a step that opens the frame replaces the
slot. With ``failure_tolerance`` >= 0, more failures in a row than that mark the ring
invalid and frames are no longer tried until a key is set.

The ratchet steps tried for a slot are derived once and kept (at most the window), so a
stream of frames under a wrong key costs a few AES attempts each, not key derivations.

A :class:`KeyStore` holds the rings: in shared-key mode one shared ring, copied for each
participant on first use and updated with it; otherwise one ring per identity.
Thread-safe: frames are opened in worker threads while keys change on the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .e2ee_frame import (
    KDF_PBKDF2,
    EncryptedFrame,
    FrameCryptoError,
    KeySet,
    derive_key_set,
    open_frame,
    ratchet_material,
)

__all__ = ["DEFAULT_RATCHET_SALT", "KeyOptions", "KeyRing", "KeyStore", "OpenResult"]

DEFAULT_RATCHET_SALT = b"LKFrameEncryptionKey"
_MAX_RING_SIZE = 256
_MAX_RATCHET_WINDOW = 256


@dataclass(frozen=True)
class KeyOptions:
    """How keys are derived and tried (livekit's KeyProviderOptions without the key itself)."""

    shared_key: bool = False
    ratchet_salt: bytes = DEFAULT_RATCHET_SALT
    ratchet_window_size: int = 16
    failure_tolerance: int = -1
    key_ring_size: int = 16
    key_derivation_function: int = KDF_PBKDF2

    def __post_init__(self) -> None:
        if not 1 <= self.key_ring_size <= _MAX_RING_SIZE:
            raise ValueError(f"key_ring_size: expected 1..{_MAX_RING_SIZE}, got {self.key_ring_size}")
        if not 0 <= self.ratchet_window_size <= _MAX_RATCHET_WINDOW:
            raise ValueError(f"ratchet_window_size: expected 0..{_MAX_RATCHET_WINDOW}, got {self.ratchet_window_size}")
        if not isinstance(self.ratchet_salt, (bytes, bytearray)):
            raise ValueError(f"ratchet_salt: expected bytes, got {type(self.ratchet_salt).__name__}")

    def key_set(self, material: bytes) -> KeySet:
        """The slot for raw key ``material`` under these options."""
        return derive_key_set(material, self.ratchet_salt, self.key_derivation_function)

    def ratchet(self, keys: KeySet) -> KeySet:
        """The slot one ratchet step after ``keys``."""
        return self.key_set(ratchet_material(keys.material, self.ratchet_salt, self.key_derivation_function))


@dataclass(frozen=True)
class OpenResult:
    """What :meth:`KeyRing.open` made of a frame: ``data`` (None if not opened), whether a
    ratchet step opened it, and whether the failure made the ring invalid just now."""

    data: bytes | None
    ratcheted: bool = False
    invalidated: bool = False


class KeyRing:
    """One participant's key slots (see the module docstring)."""

    def __init__(self, options: KeyOptions) -> None:
        self.options = options
        self._slots: list[KeySet | None] = [None] * options.key_ring_size
        self._chains: dict[int, list[KeySet]] = {}  # ratchet steps tried ahead of a slot
        self._lock = threading.Lock()
        self.current_index = 0
        self.valid = False
        self._failures = 0

    def copy(self) -> KeyRing:
        """A ring with the same slots (the shared ring's copy for one participant)."""
        ring = KeyRing(self.options)
        with self._lock:
            ring._slots = list(self._slots)
            ring.current_index, ring.valid = self.current_index, self.valid
        return ring

    def _index(self, key_index: int) -> int:
        if key_index == -1:
            return self.current_index
        if not 0 <= key_index < len(self._slots):
            raise ValueError(f"key_index: expected 0..{len(self._slots) - 1}, got {key_index}")
        return key_index

    def set(self, keys: KeySet, key_index: int) -> None:
        """Put ``keys`` in slot ``key_index`` (it becomes current); the ring is valid again."""
        with self._lock:
            index = self._index(key_index)
            self._slots[index] = keys
            self._chains.pop(index, None)
            self.current_index = index
            self.valid, self._failures = True, 0

    def get(self, key_index: int) -> KeySet | None:
        """The slot ``key_index`` (-1: the current one), None if empty or out of range."""
        with self._lock:
            try:
                return self._slots[self._index(key_index)]
            except ValueError:
                return None

    def ratchet(self, key_index: int) -> KeySet | None:
        """Ratchet slot ``key_index`` one step; the new slot, None if the slot is empty."""
        current = self.get(key_index)
        if current is None:
            return None
        stepped = self.options.ratchet(current)
        self.set(stepped, key_index)
        return stepped

    def open(self, frame: EncryptedFrame, *, ratchet: bool = True) -> OpenResult:
        """Decrypt ``frame`` with its slot, else (``ratchet``) with a ratchet step ahead, which
        then replaces the slot. ``ratchet=False`` never derives a key (for the event loop)."""
        with self._lock:
            if not 0 <= frame.key_index < len(self._slots):
                raise FrameCryptoError(f"key index {frame.key_index} is outside the key ring (size {len(self._slots)})")
            keys = self._slots[frame.key_index]
            if keys is None:
                raise FrameCryptoError(f"no key in slot {frame.key_index}")
            if not self.valid and self.options.failure_tolerance >= 0:
                return OpenResult(None)
        data = open_frame(frame, keys.key)
        if data is not None:
            with self._lock:
                self._failures = 0
            return OpenResult(data)
        for step in self._chain(frame.key_index, keys) if ratchet else ():
            data = open_frame(frame, step.key)
            if data is not None:
                with self._lock:
                    if self._slots[frame.key_index] is keys:
                        self._slots[frame.key_index] = step
                        self._chains.pop(frame.key_index, None)
                    self.valid, self._failures = True, 0
                return OpenResult(data, ratcheted=True)
        return OpenResult(None, invalidated=self._count_failure())

    def _chain(self, index: int, keys: KeySet) -> list[KeySet]:
        window = self.options.ratchet_window_size
        with self._lock:
            chain = self._chains.get(index)
            if chain is not None and (not chain or self._slots[index] is keys):
                return chain
        chain = []
        step = keys
        for _ in range(window):  # derived outside the lock: a few key derivations, once per slot
            step = self.options.ratchet(step)
            chain.append(step)
        with self._lock:
            if self._slots[index] is keys:
                self._chains[index] = chain
        return chain

    def _count_failure(self) -> bool:
        with self._lock:
            if self.options.failure_tolerance < 0:
                return False
            self._failures += 1
            if self._failures > self.options.failure_tolerance and self.valid:
                self.valid = False
                return True
            return False


_SHARED = "\x00shared"  # not an identity a token can carry


class KeyStore:
    """Every participant's key ring (see the module docstring)."""

    def __init__(self, options: KeyOptions) -> None:
        self.options = options
        self._rings: dict[str, KeyRing] = {}
        self._lock = threading.Lock()

    def set_shared(self, keys: KeySet, key_index: int) -> None:
        """Set a slot of the shared key (and of every participant's copy of it)."""
        with self._lock:
            ring = self._rings.setdefault(_SHARED, KeyRing(self.options))
            rings = list(self._rings.values())
        ring.set(keys, key_index)
        for other in rings:
            if other is not ring:
                other.set(keys, key_index)

    def shared(self) -> KeyRing | None:
        """The shared ring itself (None before a shared key is set)."""
        with self._lock:
            return self._rings.get(_SHARED)

    def set(self, identity: str, keys: KeySet, key_index: int) -> None:
        """Set a slot of one participant's ring."""
        with self._lock:
            ring = self._rings.setdefault(identity, KeyRing(self.options))
        ring.set(keys, key_index)

    def ring(self, identity: str) -> KeyRing | None:
        """The ring used for ``identity``'s frames (in shared mode, its copy of the shared ring)."""
        with self._lock:
            ring = self._rings.get(identity)
            if ring is not None or not self.options.shared_key:
                return ring
            shared = self._rings.get(_SHARED)
            if shared is None:
                return None
            ring = self._rings[identity] = shared.copy()
            return ring

    def peek(self, identity: str) -> KeyRing | None:
        """``identity``'s own ring if it has one (no copy made)."""
        with self._lock:
            return self._rings.get(identity)

    def entries(self) -> list[tuple[str | None, int, KeySet]]:
        """Every set slot as (identity or None for the shared key, index, keys): to replay into a new session."""
        out: list[tuple[str | None, int, KeySet]] = []
        with self._lock:
            rings = list(self._rings.items())
        for identity, ring in rings:
            for index in range(ring.options.key_ring_size):
                keys = ring.get(index)
                if keys is not None:
                    out.append((None if identity == _SHARED else identity, index, keys))
        return out
