import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")
if not settings.configured:
    # Read by the settings: under ASGI, database connections come from a pool.
    os.environ.setdefault("TOKENMILL_ASGI", "true")
django_application = get_asgi_application()

# Imported once Django is set up: the guard reads settings and the files app.
from tokenmill.files.asgi import refuse_oversized_uploads  # noqa: E402

application = refuse_oversized_uploads(django_application)
