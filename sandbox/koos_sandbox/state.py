"""Everything one sandbox API server holds, in one place the HTTP layer and controllers share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from koos_sandbox.audit import RequestLog
from koos_sandbox.auth import Authenticator, Authorizer
from koos_sandbox.faults import Faults
from koos_sandbox.logs import PodLogs
from koos_sandbox.registry import Registry
from koos_sandbox.store import Store
from koos_sandbox.writes import Writes


@dataclass
class State:
    registry: Registry
    store: Store
    writes: Writes
    authn: Authenticator = field(default_factory=Authenticator)
    authz: Authorizer = field(default_factory=Authorizer)
    faults: Faults = field(default_factory=Faults)
    requests: RequestLog = field(default_factory=RequestLog)
    logs: PodLogs = field(default_factory=PodLogs)
    kubelet_nodes: set[str] = field(default_factory=set)  # Nodes the store-level kubelet runs
    bookmark_interval: float = 5.0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("koos_sandbox"))
