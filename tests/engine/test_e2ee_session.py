"""The engine's frame cryptors on their own: states reported once per change, keys by identity,
tracks that are not encrypted pass, disabled cryptors pass, undecryptable frames are dropped."""

from __future__ import annotations

import asyncio

from kitewire.engine.e2ee import E2eeConfig, E2eeSession
from kitewire.frames.enums import EncryptionState
from kitewire.media.e2ee_keys import KeyOptions
from livekit.protocol import models

OPTIONS = KeyOptions(ratchet_window_size=0)
FRAME = bytes([0x31, 0x02, 0x00]) + bytes(range(50))  # a VP8 delta frame


def participant(sid: str, identity: str, track_sid: str, encryption: int) -> models.ParticipantInfo:
    info = models.ParticipantInfo(sid=sid, identity=identity)
    info.tracks.add(sid=track_sid, encryption=encryption)
    return info


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_frames_cross_between_two_sessions_and_states_are_reported_once() -> None:
    loop = asyncio.get_running_loop()
    states: list[tuple[str, int]] = []
    config = E2eeConfig(OPTIONS, keys=((None, 0, OPTIONS.key_set(b"shared")),))
    sender = E2eeSession(config, lambda identity, state: states.append((identity, state)), loop)
    receiver = E2eeSession(
        E2eeConfig(KeyOptions(shared_key=True, ratchet_window_size=0)),
        lambda identity, state: states.append((identity, state)),
        loop,
    )
    sender.store.set("alice", OPTIONS.key_set(b"alice's key"), 0)
    for session in (sender, receiver):
        session.learn([participant("PA_alice", "alice", "TR_video", models.Encryption.GCM)])
    encrypt = sender.cryptor("TR_video", "PA_alice", local=True).encrypt
    decrypt = receiver.cryptor("TR_video", "PA_alice", local=False).decrypt
    sealed = encrypt("VP8", FRAME)
    assert sealed is not None and sealed != FRAME and sealed[:3] == FRAME[:3]
    assert encrypt("VP8", FRAME) != sealed  # a fresh IV per frame
    assert decrypt("VP8", sealed) is None  # the receiver has no key for alice yet
    receiver.set_key(None, 0, OPTIONS.key_set(b"the wrong shared key"))
    assert decrypt("VP8", sealed) is None
    receiver.store.set("alice", OPTIONS.key_set(b"alice's key"), 0)
    assert decrypt("VP8", sealed) == FRAME
    assert decrypt("VP8", sealed[:10]) is None  # a cut frame: dropped, no exception
    await settle()
    assert states == [
        ("alice", EncryptionState.OK),
        ("alice", EncryptionState.MISSING_KEY),
        ("alice", EncryptionState.DECRYPTION_FAILED),
        ("alice", EncryptionState.OK),
        ("alice", EncryptionState.DECRYPTION_FAILED),
    ]


async def test_unencrypted_tracks_and_disabled_cryptors_pass_frames_as_they_are() -> None:
    loop = asyncio.get_running_loop()
    session = E2eeSession(E2eeConfig(OPTIONS), lambda identity, state: None, loop)
    session.learn([participant("PA_bob", "bob", "TR_plain", models.Encryption.NONE)])
    assert session.cryptor("TR_plain", "PA_bob", local=False).decrypt("VP8", FRAME) == FRAME
    cryptor = session.cryptor("TR_other", "PA_bob", local=False)
    assert cryptor.decrypt("VP8", FRAME) is None  # unknown tracks count as encrypted
    session.update_cryptor("TR_other", enabled=False, key_index=None)
    assert cryptor.decrypt("VP8", FRAME) == FRAME
    session.enabled = False
    assert session.cryptor("TR_mine", "PA_bob", local=True).encrypt("VP8", FRAME) == FRAME
    session.learn([models.ParticipantInfo(sid="PA_bob", identity="bob", state=models.ParticipantInfo.DISCONNECTED)])
    assert session.identity_of("PA_bob") == "PA_bob"
