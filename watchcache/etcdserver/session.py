"""Who is calling the etcd front, and the tokens etcd's own auth flow hands out.

A tenant authenticates as kube-apiserver's etcd client does, with a client certificate whose CN is its
name (``--etcd-certfile``), or with etcd's auth flow: ``Auth.Authenticate`` with the tenant's name as
user and one of its bearer tokens as password (``etcdctl --user wardle:TOKEN``) gives out a token that
later calls carry in their ``token`` metadata. Tokens live in memory only, expire when unused for five
minutes (as etcd's simple tokens do), and are bounded in number per tenant. Without tenants configured,
every caller is the one anonymous tenant, owning every configured group (loopback development).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import StatusError
from ..tenancy.auth import Authenticator
from ..tenancy.limits import Admission
from .errors import AUTH_FAILED, AUTH_NOT_ENABLED, INVALID_TOKEN, PERMISSION_DENIED, USER_EMPTY, Context
from .keyspace import Keyspace

__all__ = ["ANONYMOUS", "Caller", "Sessions"]

ANONYMOUS = "_anonymous"
_TOKEN_TTL = 300.0
_MAX_TOKENS_PER_TENANT = 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """A call's tenant: its keyspace and, when tenants are configured, its limits."""

    tenant: str
    keyspace: Keyspace
    admission: Admission | None


class Sessions:
    """Maps a call's credentials to its tenant (see the module docstring)."""

    def __init__(
        self,
        authenticator: Authenticator | None,
        keyspaces: Mapping[str, Keyspace],
        admissions: Mapping[str, Admission],
    ) -> None:
        self._authenticator = authenticator
        self._keyspaces = keyspaces
        self._admissions = admissions
        self._tokens: dict[str, OrderedDict[str, float]] = {}
        self._owners: dict[str, str] = {}

    def _caller(self, tenant: str) -> Caller:
        return Caller(tenant, self._keyspaces[tenant], self._admissions.get(tenant))

    def authenticate(self, name: str, password: str) -> str:
        """``Auth.Authenticate``: a token for the tenant ``name`` whose bearer token is ``password``."""
        if self._authenticator is None:
            raise AUTH_NOT_ENABLED()
        try:
            tenant = self._authenticator.from_token(password)
        except StatusError:
            raise AUTH_FAILED() from None
        if tenant.name != name:
            raise AUTH_FAILED()
        mine = self._tokens.setdefault(name, OrderedDict())
        while len(mine) >= _MAX_TOKENS_PER_TENANT:
            oldest, _ = mine.popitem(last=False)
            self._owners.pop(oldest, None)
        token = f"{secrets.token_urlsafe(16)}.{len(self._owners)}"
        mine[token] = time.monotonic() + _TOKEN_TTL
        self._owners[token] = name
        return token

    def _from_token(self, token: str) -> str:
        tenant = self._owners.get(token)
        if tenant is None:
            raise INVALID_TOKEN()
        mine = self._tokens[tenant]
        now = time.monotonic()
        if mine[token] < now:
            del mine[token]
            del self._owners[token]
            raise INVALID_TOKEN()
        mine[token] = now + _TOKEN_TTL
        mine.move_to_end(token)
        return tenant

    def caller(self, context: Context) -> Caller:
        """The tenant of a call: by client certificate, else by token; etcd's errors otherwise."""
        if self._authenticator is None:
            return self._caller(ANONYMOUS)
        names = context.auth_context().get("x509_common_name") or []
        if names:
            tenant = names[0].decode("utf-8", "replace")
            if tenant not in self._keyspaces:
                raise PERMISSION_DENIED()
            return self._caller(tenant)
        metadata = dict(context.invocation_metadata() or ())
        token = metadata.get("token") or metadata.get("authorization")
        if not token:
            raise USER_EMPTY()
        return self._caller(self._from_token(str(token)))
