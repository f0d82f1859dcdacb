"""Tenants: who is calling (authentication), what they may do (authorization), and how much of the
service they may use (limits, quotas, byte budgets).

Owns: ``auth`` (Authenticator, Tenant, the token file), ``limits`` (Admission: rate, slots, watches,
quotas, body shape, byte budget), ``config`` (TenantConfig, TenantLimits: leaf value types). May
import: ``watchcache.api``, ``watchcache.errors``.
"""
