from tenants.errors import TenantError


class InsufficientQuota(TenantError):
    """The budget (credits and monthly limit) does not cover what was asked: OpenAI's 429."""

    status = 429
    error_type = "insufficient_quota"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message, code="insufficient_quota", param=param)
