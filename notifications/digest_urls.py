"""Digest links: unsubscribe without logging in, by the signed token in the email."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from graphspace.models import User
from notifications.digest import user_id_from_token

TEMPLATE = "notifications/unsubscribe.html"


# The token is the credential: a mail client's RFC 8058 one-click POST
# (body "List-Unsubscribe=One-Click") carries no cookie and no CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (mail scanners follow links; they must not unsubscribe anyone);
    POST, from the confirm page's button or a one-click client, turns the digest off."""
    user_id = user_id_from_token(token)
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    if user is None:
        return render(request, TEMPLATE, {"state": "invalid"}, status=400)
    if request.method == "POST":
        User.objects.filter(pk=user.pk).update(receive_notification_email=False)
        return render(request, TEMPLATE, {"state": "done", "recipient": user.email})
    return render(request, TEMPLATE, {
        "state": "confirm", "recipient": user.email, "subscribed": user.receive_notification_email,
    })


urlpatterns = [
    path("unsubscribe/<str:token>/", unsubscribe, name="digest-unsubscribe"),
]
