"""Who is calling, and may they: static bearer tokens, impersonation, simple deny rules.

Authentication works like kube-apiserver's static token file: a token maps to a user name,
a uid and groups. Every authenticated caller is also in `system:authenticated`. An admin
(group `system:masters`) may impersonate with the `Impersonate-User`/`Impersonate-Group`
headers, as `kubectl --as` sends them. Authorisation allows everything unless a test adds a
`DenyRule`; the 403 text is the apiserver's RBAC wording.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from koos_sandbox import errors
from koos_sandbox.errors import ApiError

ADMIN_GROUP = "system:masters"


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "username": self.username,
            "uid": self.uid,
            "groups": list(self.groups),
        }
        if self.extra:
            body["extra"] = self.extra
        return body

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups


def service_account_user(namespace: str, name: str) -> UserInfo:
    return UserInfo(
        username=f"system:serviceaccount:{namespace}:{name}",
        uid=secrets.token_hex(8),
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
    )


def _with_authenticated(user: UserInfo) -> UserInfo:
    if "system:authenticated" in user.groups:
        return user
    return UserInfo(user.username, user.uid, (*user.groups, "system:authenticated"), user.extra)


@dataclass(frozen=True)
class DenyRule:
    """Refuse `verb` on `resource` (plural, "*" for all) in `group` to a user or a group."""

    verb: str
    resource: str
    user: str | None = None
    group: str | None = None
    api_group: str | None = None  # None matches any API group
    namespace: str | None = None

    def matches(self, user: UserInfo, verb: str, api_group: str, resource: str, ns: str) -> bool:
        if self.verb not in ("*", verb) or self.resource not in ("*", resource):
            return False
        if self.api_group is not None and self.api_group != api_group:
            return False
        if self.namespace is not None and self.namespace != ns:
            return False
        if self.user is not None and self.user != user.username:
            return False
        return not (self.group is not None and self.group not in user.groups)


@dataclass(frozen=True)
class BoundToken:
    """A token issued by the TokenRequest API: valid until `expires` (time.time()) and while
    every object of `bound_uids` (the ServiceAccount, the Pod it is bound to) exists."""

    user: UserInfo
    expires: float
    bound_uids: tuple[str, ...]


class Authenticator:
    def __init__(self) -> None:
        self.tokens: dict[str, UserInfo] = {}
        self.bound: dict[str, BoundToken] = {}
        # Whether an object with this uid exists; set by the sandbox (its store).
        self.exists: Callable[[str], bool] = lambda uid: False

    def add_bound(self, user: UserInfo, expires: float, bound_uids: tuple[str, ...]) -> str:
        """A new random token for `user` (a ServiceAccount), refused after `expires` or once
        one of `bound_uids` is deleted."""
        token = secrets.token_urlsafe(32)
        self.bound[token] = BoundToken(user, expires, bound_uids)
        return token

    def _bound_user(self, token: str) -> UserInfo | None:
        found = self.bound.get(token)
        if found is None:
            return None
        if time.time() >= found.expires or not all(self.exists(u) for u in found.bound_uids):
            del self.bound[token]  # expired or its ServiceAccount/Pod is gone: for good
            return None
        return found.user

    def add(self, username: str, groups: tuple[str, ...] = (), token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(24)
        self.tokens[token] = UserInfo(username, secrets.token_hex(8), tuple(groups))
        return token

    def token_for(self, username: str) -> str:
        for token, user in self.tokens.items():
            if user.username == username:
                return token
        raise KeyError(username)

    def authenticate(
        self, authorization: str | None, impersonate_user: str | None, impersonate_groups: list[str]
    ) -> UserInfo:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        token = authorization[len("Bearer ") :].strip()
        user = self.tokens.get(token) or self._bound_user(token)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user = _with_authenticated(user)
        if impersonate_user:
            if not user.is_admin:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'users "{impersonate_user}" is forbidden: User "{user.username}" cannot '
                    'impersonate resource "users" in API group "" at the cluster scope',
                )
            user = _with_authenticated(UserInfo(impersonate_user, "", tuple(impersonate_groups)))
        return user


class Authorizer:
    def __init__(self) -> None:
        self.rules: list[DenyRule] = []

    def deny(self, rule: DenyRule) -> None:
        self.rules.append(rule)

    def allows(self, user: UserInfo, verb: str, api_group: str, resource: str, ns: str) -> bool:
        return not any(r.matches(user, verb, api_group, resource, ns) for r in self.rules)

    def check(
        self,
        user: UserInfo,
        verb: str,
        api_group: str,
        resource: str,
        namespace: str,
        name: str = "",
        subresource: str = "",
    ) -> None:
        full = f"{resource}/{subresource}" if subresource else resource
        if self.allows(user, verb, api_group, full, namespace) and self.allows(
            user, verb, api_group, resource, namespace
        ):
            return
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        raise errors.forbidden(
            resource,
            name,
            api_group,
            f'User "{user.username}" cannot {verb} resource "{full}" '
            f'in API group "{api_group}" {scope}',
        )
