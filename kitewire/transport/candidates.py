"""Remote ICE candidates: from a description or trickled, deduplicated, filtered and bounded."""

from __future__ import annotations

import logging

from .aiortc_seam import BundleTransport
from .ice import MAX_REMOTE_CANDIDATES
from .sdp import SdpSession

__all__ = ["RemoteCandidates"]

logger = logging.getLogger(__name__)

# Candidate lines looked at per remote description: unbundled offers repeat
# candidates per m-line, but nothing legitimate comes near this.
_MAX_SDP_CANDIDATE_LINES = 256


class RemoteCandidates:
    """Feeds remote candidates to the transport: UDP component 1 only (rtcp-mux), 127.0.0.1 only when
    ``loopback_only``, each once, at most :data:`~kitewire.transport.ice.MAX_REMOTE_CANDIDATES`."""

    def __init__(self, transport: BundleTransport, *, loopback_only: bool) -> None:
        self._transport = transport
        self._loopback_only = loopback_only
        self._seen: set[str] = set()
        self._limit_logged = False

    async def add_from_description(self, session: SdpSession) -> None:
        """Add the candidates of a remote description's live m-lines (malformed ones skipped)."""
        lines = [line for m in session.media if not m.rejected for line in m.candidates]
        if len(lines) > _MAX_SDP_CANDIDATE_LINES:
            logger.warning(
                "remote description carries %d candidate lines; only the first %d are looked at",
                len(lines),
                _MAX_SDP_CANDIDATE_LINES,
            )
            del lines[_MAX_SDP_CANDIDATE_LINES:]
        for line in lines:
            try:
                if not await self.add_line(line):
                    break  # full: the rest would be refused too
            except ValueError:
                logger.debug("ignoring malformed SDP candidate %r", line)

    async def add_line(self, line: str) -> bool:
        """Add one candidate line; False when it is new but the connection holds its maximum."""
        text = line.strip()
        if text.startswith("a="):
            text = text[2:]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if text in self._seen:
            return True
        if len(self._seen) >= MAX_REMOTE_CANDIDATES:
            # A peer flooding candidates would make ICE check every pair; refused
            # before parsing so a flood costs a set lookup per candidate.
            if not self._limit_logged:
                self._limit_logged = True
                logger.warning("refusing remote ICE candidates beyond %d", MAX_REMOTE_CANDIDATES)
            return False
        candidate = self._transport.parse_candidate(text)
        if candidate.component != 1 or candidate.transport.lower() != "udp":
            return True  # rtcp-mux and UDP only
        if self._loopback_only and candidate.host != "127.0.0.1":
            return True  # loopback-only connections never reach other addresses
        self._seen.add(text)
        await self._transport.add_remote_candidate(candidate)
        return True
