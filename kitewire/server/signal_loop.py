"""A participant's signal loop: read requests, hand each to ``requests.dispatch``, end the session on failure.

What ends a session, and what the client hears then: a client that leaves
or drops its socket hears nothing; one that stops pinging, sends a malformed
message or a request the server refuses hears a leave with the reason; a bug
of ours ends only that session.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.protocol import models as pb_models

from kitewire.signal.connection import SignalProtocolError

from .events import log_refusal
from .participant import Participant
from .requests import dispatch

__all__ = ["run_signal_loop"]

logger = logging.getLogger("kitewire.server")


async def run_signal_loop(participant: Participant) -> None:
    """Handle ``participant``'s signal requests until it leaves or its connection drops, then close it."""
    reason = "signal connection closed"
    code = pb_models.SIGNAL_CLOSE
    # Whether the client may still be listening and should hear why it goes.
    notify = False
    try:
        while not participant.closed:
            try:
                request = await participant.connection.receive(timeout=float(participant.context.settings.ping_timeout))
            except TimeoutError:
                reason, code, notify = "no ping within ping_timeout", pb_models.SIGNAL_CLOSE, True
                break
            except SignalProtocolError as exc:
                log_refusal(participant.room.name, participant.identity, "signal", str(exc))
                reason, code, notify = f"bad signal message: {exc}", pb_models.STATE_MISMATCH, True
                break
            if request is None:
                if participant.connection.failure:
                    # This end gave up on a client that stopped reading; it would not hear why.
                    reason, code = participant.connection.failure, pb_models.SIGNAL_CLOSE
                break
            try:
                done = await dispatch(participant, request)
            except ValueError as exc:
                log_refusal(
                    participant.room.name, participant.identity, request.WhichOneof("message") or "unknown", str(exc)
                )
                reason, code, notify = f"bad request: {exc}", pb_models.STATE_MISMATCH, True
                break
            except NotImplementedError as exc:
                logger.warning(
                    "participant %s: %s not available: %s", participant.identity, request.WhichOneof("message"), exc
                )
                continue
            except Exception:
                # A bug of ours: the session's state is unknown, so end it cleanly.
                kind = request.WhichOneof("message") or "unknown"
                logger.exception("participant %s: handling %s failed", participant.identity, kind)
                reason, code, notify = f"internal error handling {kind}", pb_models.UNKNOWN_REASON, True
                break
            if done:
                reason, code = "client left", pb_models.CLIENT_INITIATED
                break
    except asyncio.CancelledError:
        reason, code, notify = "server stopping", pb_models.SERVER_SHUTDOWN, True
        raise
    finally:
        await participant.close(reason, code, notify_client=notify)
