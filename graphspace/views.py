"""Logging in and out (the GraphSpace pages live in graphspace/pages.py)."""

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from apiedge import errors

# Says when to come back, and nothing about whether the email has an account.
LOCKED_OUT_MESSAGE = "Too many failed logins for {email} from your address. Try again in {minutes} minutes."


def _next_url(request: HttpRequest) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    return next_url


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    error = None
    email = ""
    if request.method == "POST":
        email = (request.POST.get("email") or "").strip().lower()
        user = authenticate(request, username=email, password=request.POST.get("password") or "")
        if user is not None:
            login(request, user)
            return redirect(next_url)
        # When the login throttle refused the attempt, axes' middleware replaces this answer
        # with lockout_response's.
        error = "Your email and password did not match. Please try again."
    context = {"error": error, "email": email, "next": next_url}
    return render(request, "graphspace/login.html", context, status=400 if error else 200)


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    """django-axes' answer to a login it refused (AXES_LOCKOUT_CALLABLE): 429 with GraphSpace's
    JSON error on the API, the login form with the reason on the page."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    email = (request.POST.get("email") or "").strip().lower()
    if header or request.path.startswith("/api/"):
        message = LOCKED_OUT_MESSAGE.format(email="this user", minutes=minutes)
        return errors.error_response(request, errors.ApiError(429, errors.USER_NOT_AUTHENTICATED, message))
    context = {"error": LOCKED_OUT_MESSAGE.format(email=email or "this email", minutes=minutes),
               "email": email, "next": _next_url(request)}
    return render(request, "graphspace/login.html", context, status=429)


@require_http_methods(["POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("/login/")
