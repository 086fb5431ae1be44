"""`python manage.py create_demo_users`: alice, bob and carol, idempotently."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from graphspace.models import User

DEMO_USERS = ("alice@example.com", "bob@example.com", "carol@example.com")


class Command(BaseCommand):
    help = "Create the demo users (password from GRAPHSPACE_DEMO_PASSWORD) if they are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        for email in DEMO_USERS:
            if User.objects.filter(email=email).exists():
                continue
            User.objects.create_user(email, settings.DEMO_PASSWORD)
            self.stdout.write(f"created {email}")
