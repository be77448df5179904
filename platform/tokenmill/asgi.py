import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")
django_application = get_asgi_application()

# Imported once Django is set up: the guard reads settings and the files app.
from tokenmill.files.asgi import refuse_oversized_uploads  # noqa: E402
from tokenmill.gateway.asgi import serve_inference  # noqa: E402

# The inference endpoints are answered before Django's stack (see tokenmill.gateway.asgi).
application = serve_inference(refuse_oversized_uploads(django_application))
