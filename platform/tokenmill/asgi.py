import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")
if not settings.configured:
    # Read by the settings: under ASGI, database connections come from a pool.
    os.environ.setdefault("TOKENMILL_ASGI", "true")
django_application = get_asgi_application()

# Imported once Django is set up: the guard reads settings and the key cache.
from tokenmill.body_guard import guard_bodies  # noqa: E402
from tokenmill.gateway.asgi import serve_inference  # noqa: E402
from tokenmill.observability.endpoints import serve_operations  # noqa: E402

# The inference endpoints are answered before Django's stack (tokenmill.gateway.asgi),
# which checks their keys at the headers and caps their bodies as they stream, from
# its own per-process memo. Every other route goes through the body guard. Health,
# readiness and metrics are answered first of all (tokenmill.observability.endpoints).
application = serve_operations(serve_inference(guard_bodies(django_application)))
