"""Agents on kitewire's server: livekit-agents workers on ``/agent``, dispatch, and AgentDispatchService.

``AgentService`` is what the server holds; ``Dispatcher`` places jobs on
``Worker`` connections; ``AgentDispatchService`` is the server API over it.
"""

from __future__ import annotations

from .dispatch_service import AGENT_DISPATCH_SERVICE, AgentDispatchService, DispatchError
from .dispatcher import Dispatcher
from .service import AgentService
from .tokens import AGENT_KIND, job_token, verify_worker_token
from .worker import Worker

__all__ = [
    "AGENT_DISPATCH_SERVICE",
    "AGENT_KIND",
    "AgentDispatchService",
    "AgentService",
    "DispatchError",
    "Dispatcher",
    "Worker",
    "job_token",
    "verify_worker_token",
]
