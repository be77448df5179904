"""`Authorization: Bearer <key>` for /v1 and /api/v1."""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from tenants.keys import KeyRecord, KeyRejected, authenticate_key, touch_last_used


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """Stands in for request.user on key-authenticated requests."""

    key: KeyRecord
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.key.public_id


class KeyRefused(exceptions.AuthenticationFailed):
    def __init__(self, rejected: KeyRejected):
        super().__init__(detail=rejected.message)
        self.status_code = rejected.status
        self.error_code = rejected.code


BEARER_FORMAT_MESSAGE = "The Authorization header must read 'Bearer YOUR_KEY'."


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None  # DRF answers 401 NotAuthenticated
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed(BEARER_FORMAT_MESSAGE)
        try:
            record = authenticate_key(token)
        except KeyRejected as rejected:
            raise KeyRefused(rejected) from None
        touch_last_used(record)
        return ApiKeyPrincipal(record), record

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the Bearer key in the OpenAPI schema."""

    target_class = "tokenmill.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from the dashboard or `manage.py create_api_key`.",
        }
