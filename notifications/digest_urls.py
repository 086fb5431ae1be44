"""Digest links: unsubscribe without logging in, by the signed token in the email."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from graphspace.models import User
from notifications.digest import UNSUBSCRIBE_MAX_AGE, TokenState, read_unsubscribe_token

TEMPLATE = "notifications/unsubscribe.html"


# The token is the credential: a mail client's RFC 8058 one-click POST
# (body "List-Unsubscribe=One-Click") carries no cookie and no CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (mail scanners follow links; they must not unsubscribe anyone);
    POST, from the confirm page's button or a one-click client, turns the digest off.

    A link works for UNSUBSCRIBE_MAX_AGE, and only while the user's digest setting is as it
    was when the email was sent (the token's nonce is the user's digest_nonce). An expired
    or revoked link gets a 410 page, an altered one a 400 page; neither changes anything.
    """
    found = read_unsubscribe_token(token)
    if found.state is TokenState.EXPIRED:
        return _refused(request, "expired")
    user = User.objects.filter(pk=found.user_id).first() if found.state is TokenState.VALID else None
    if user is None:
        return render(request, TEMPLATE, {"state": "invalid"}, status=400)
    if user.digest_nonce.hex != found.nonce:
        return _refused(request, "revoked")
    if request.method == "POST":
        # Conditional on the nonce, so a change of the setting since the page was read wins;
        # turning the digest off renews the nonce (the trigger), which retires this link.
        if not User.objects.filter(pk=user.pk, digest_nonce=user.digest_nonce).update(receive_notification_email=False):
            return _refused(request, "revoked")
        return render(request, TEMPLATE, {"state": "done", "recipient": user.email})
    return render(request, TEMPLATE, {
        "state": "confirm", "recipient": user.email, "subscribed": user.receive_notification_email,
    })


def _refused(request: HttpRequest, state: str) -> HttpResponse:
    return render(request, TEMPLATE, {"state": state, "days": UNSUBSCRIBE_MAX_AGE.days}, status=410)


urlpatterns = [
    path("unsubscribe/<str:token>/", unsubscribe, name="digest-unsubscribe"),
]
