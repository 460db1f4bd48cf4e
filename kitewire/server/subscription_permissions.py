"""Who may subscribe to a publisher's tracks: ``set_track_subscription_permissions`` on the server side.

A publisher starts allowing everyone (livekit's default). A SubscriptionPermission
replaces the whole rule: ``all_participants``, or one entry per participant
(named by identity or sid) with all its tracks or some of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.protocol import rtc as pb_rtc

from .limits import MAX_PERMISSION_ENTRIES, MAX_SIDS_PER_REQUEST

__all__ = ["SubscriptionPermissions", "permission_problem"]


@dataclass(frozen=True)
class _Grant:
    all_tracks: bool
    track_sids: frozenset[str]

    def covers(self, track_sid: str) -> bool:
        return self.all_tracks or track_sid in self.track_sids


def permission_problem(request: pb_rtc.SubscriptionPermission) -> str | None:
    """Why ``request`` is over a bound (None when it is within them)."""
    if len(request.track_permissions) > MAX_PERMISSION_ENTRIES:
        return (
            f"subscription_permission: expected at most {MAX_PERMISSION_ENTRIES} participants, "
            f"got {len(request.track_permissions)}"
        )
    for entry in request.track_permissions:
        if len(entry.track_sids) > MAX_SIDS_PER_REQUEST:
            return (
                f"subscription_permission: expected at most {MAX_SIDS_PER_REQUEST} track sids per participant, "
                f"got {len(entry.track_sids)}"
            )
    return None


class SubscriptionPermissions:
    """One publisher's rule for its subscribers."""

    def __init__(self) -> None:
        self.all_participants = True
        self._by_identity: dict[str, _Grant] = {}
        self._by_sid: dict[str, _Grant] = {}

    def replace(self, request: pb_rtc.SubscriptionPermission) -> None:
        """Take ``request`` as the new rule (check ``permission_problem`` first)."""
        self.all_participants = request.all_participants
        self._by_identity = {}
        self._by_sid = {}
        for entry in request.track_permissions:
            grant = _Grant(entry.all_tracks, frozenset(entry.track_sids))
            if entry.participant_identity:
                self._by_identity[entry.participant_identity] = grant
            elif entry.participant_sid:
                self._by_sid[entry.participant_sid] = grant

    def allows(self, identity: str, sid: str, track_sid: str) -> bool:
        """Whether the participant ``identity`` (session ``sid``) may subscribe to ``track_sid``."""
        if self.all_participants:
            return True
        grant = self._by_identity.get(identity) or self._by_sid.get(sid)
        return grant is not None and grant.covers(track_sid)
