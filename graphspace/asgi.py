"""ASGI entry point for daphne: HTTP now, websockets with the notification center."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphspace.settings")

application = get_asgi_application()
