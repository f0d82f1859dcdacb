"""Who is calling (authentication) and what they may do (authorization).

A tenant is an aggregated API server. It authenticates with a bearer token (from the configuration or
from kube-apiserver's ``--token-auth-file`` CSV) or, over TLS, with a client certificate whose CN is its
name. It has full access to its ``groups``, read-only access to its ``readGroups`` and nothing else.

Tokens are kept only as SHA-256 digests and compared with :func:`hmac.compare_digest`, so neither the
process memory nor response timing gives a token away; they are never logged.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ForbiddenError, UnauthorizedError
from .config import TenantConfig, TenantLimits

__all__ = ["READ_VERBS", "Authenticator", "Tenant", "load_token_file"]

READ_VERBS = frozenset({"LIST", "GET", "WATCH"})
_VERB_WORDS = {
    "LIST": "list",
    "GET": "get",
    "WATCH": "watch",
    "CREATE": "create",
    "UPDATE": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    groups: frozenset[str]
    read_groups: frozenset[str]

    def can_read(self, group: str) -> bool:
        return group in self.groups or group in self.read_groups

    def authorize(self, *, verb: str, group: str, resource: str, namespace: str | None) -> None:
        """Raise 403 Forbidden unless this tenant may do ``verb`` on ``resource.group``."""
        allowed = group in self.groups or (verb in READ_VERBS and group in self.read_groups)
        if allowed:
            return
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        action = _VERB_WORDS.get(verb, verb.lower())
        raise ForbiddenError(
            f'{resource}.{group} is forbidden: User "{self.name}" cannot {action} '
            f'resource "{resource}" in API group "{group}"{where}',
            details={"group": group, "kind": resource},
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def load_token_file(path: str | Path) -> list[tuple[str, str]]:
    """(token, user) pairs from kube-apiserver's token file: ``token,user,uid,"group1,group2"``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read token file {path}: {err.strerror or err}") from None
    pairs = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise ConfigError(f'token file {path} line {number}: want token,user,uid[,"groups"]')
        pairs.append((row[0].strip(), row[1].strip()))
    return pairs


class Authenticator:
    """Maps credentials to tenants. With no tenants configured, authentication is off."""

    def __init__(self, tenants: Sequence[TenantConfig], extra_tokens: Iterable[tuple[str, str]] = ()) -> None:
        self.tenants: Mapping[str, Tenant] = {
            t.name: Tenant(t.name, frozenset(t.groups), frozenset(t.read_groups)) for t in tenants
        }
        #: Each tenant's limits, by tenant name.
        self.limits: Mapping[str, TenantLimits] = {t.name: t.limits for t in tenants}
        self._tokens: dict[bytes, str] = {}
        pairs = [(token, t.name) for t in tenants for token in t.tokens]
        for token, user in [*pairs, *extra_tokens]:
            if user not in self.tenants:
                raise ConfigError(f'token file: user "{user}" is not a configured tenant')
            digest = _digest(token)
            if self._tokens.get(digest, user) != user:
                raise ConfigError("a token is given to more than one tenant")
            self._tokens[digest] = user

    def from_token(self, token: str) -> Tenant:
        digest = _digest(token)
        for known, user in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return self.tenants[user]
        raise UnauthorizedError("Unauthorized")

    def from_certificate(self, common_name: str) -> Tenant:
        tenant = self.tenants.get(common_name)
        if tenant is None:
            raise UnauthorizedError("Unauthorized")
        return tenant

    def authenticate(self, authorization: str | None, certificate_cn: str | None) -> Tenant:
        """The tenant behind a request's ``Authorization`` header or verified client certificate."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return self.from_token(token.strip())
            raise UnauthorizedError("Unauthorized")
        if certificate_cn:
            return self.from_certificate(certificate_cn)
        raise UnauthorizedError("Unauthorized")
