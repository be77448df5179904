"""Errors a user can cause in tenant operations.

They carry what the API and the dashboard need to show them: a message for a
person, a stable code for a program, and the parameter at fault.
"""


class TenantError(Exception):
    """A request that cannot be carried out as asked (HTTP 400)."""

    status = 400

    def __init__(self, message: str, *, code: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class TenantPermissionError(TenantError):
    """The actor's role or key does not allow this (HTTP 403)."""

    status = 403


class TenantScopeError(RuntimeError):
    """A tenant-owned query was built without a tenant: a programming error, never a 200."""
