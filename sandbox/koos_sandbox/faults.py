"""Fault injection for tests: errors, latency, dropped watches and expired versions.

Rules are matched per request (verb and resource, either may be "*"); an error rule fires
with its `rate`, drawn from one seeded random generator, so a failing run replays with the
same seed. Discovery and the sandbox's own endpoints are never faulted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from koos_sandbox.errors import ApiError

_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class ErrorRule:
    verb: str = "*"
    resource: str = "*"  # plural, or plural/subresource
    rate: float = 1.0
    code: int = 500
    retry_after: int | None = None
    remaining: int | None = None  # fire at most this many times

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)


@dataclass
class LatencyRule:
    seconds: float
    verb: str = "*"
    resource: str = "*"

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.errors: list[ErrorRule] = []
        self.latencies: list[LatencyRule] = []
        # A dropped watch (`Sandbox.drop_watches`) also expires the versions before the drop:
        # the client's resumed watch gets 410 Gone and must relist, kopf's hardest path.
        self.expire_on_drop = False

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.random = random.Random(seed)

    def fail(
        self,
        verb: str = "*",
        resource: str = "*",
        *,
        code: int = 500,
        rate: float = 1.0,
        retry_after: int | None = None,
        times: int | None = None,
    ) -> ErrorRule:
        rule = ErrorRule(verb, resource, rate, code, retry_after, times)
        self.errors.append(rule)
        return rule

    def delay(self, seconds: float, verb: str = "*", resource: str = "*") -> LatencyRule:
        rule = LatencyRule(seconds, verb, resource)
        self.latencies.append(rule)
        return rule

    def clear(self) -> None:
        self.errors.clear()
        self.latencies.clear()
        self.expire_on_drop = False

    def latency_for(self, verb: str, resource: str) -> float:
        return sum(r.seconds for r in self.latencies if r.matches(verb, resource))

    def error_for(self, verb: str, resource: str) -> ApiError | None:
        for rule in self.errors:
            if not rule.matches(verb, resource) or rule.remaining == 0:
                continue
            if self.random.random() >= rule.rate:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
            reason = _REASONS.get(rule.code, "InternalError")
            message = (
                "Too many requests, please try again later."
                if rule.code == 429
                else f"injected fault: {reason} for {verb} {resource}"
            )
            return ApiError(rule.code, reason, message, headers=headers)
        return None
