"""Request plumbing for API v1: authentication, body and query parsing, error mapping."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from graphspace.actions import ActionError
from graphspace.api import errors
from graphspace.cyjs import GraphFormatError
from graphspace.models import User

log = logging.getLogger(__name__)

# Verifying a password costs a deliberately slow hash (about half a second with Django's
# PBKDF2). The client sends Basic credentials on every call, so a verified pair is
# remembered for a minute under a keyed hash; the password itself is never stored.
_VERIFIED: OrderedDict[str, tuple[int, float]] = OrderedDict()
_VERIFIED_TTL = 60.0
_VERIFIED_MAX = 10_000
_verified_lock = threading.Lock()


def _credential_key(email: str, password: str) -> str:
    return hashlib.sha256(f"{settings.SECRET_KEY}\0{email}\0{password}".encode()).hexdigest()


def basic_auth_user(header: str, request: HttpRequest) -> User | None:
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    email, sep, password = decoded.partition(":")
    if not sep:
        return None
    email = email.strip().lower()
    key = _credential_key(email, password)
    now = time.monotonic()
    with _verified_lock:
        hit = _VERIFIED.get(key)
    if hit and hit[1] > now:
        user = User.objects.filter(pk=hit[0], is_active=True).first()
        if user is not None and user.email == email:
            return user
    # With the request, so that the login throttle (django-axes) counts this attempt for this
    # email and address, and refuses it while they are locked out. A pair verified above is
    # not a guess and skips that check.
    user = authenticate(request, username=email, password=password)
    if user is None:
        return None
    with _verified_lock:
        _VERIFIED[key] = (user.pk, now + _VERIFIED_TTL)
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return user  # type: ignore[return-value]


_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


def request_user(request: HttpRequest) -> User | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        return basic_auth_user(header, request)
    if request.user.is_authenticated:
        # A browser's cookie is sent with any site's form: a change made on the strength of
        # the session alone must carry the CSRF token (Basic-auth calls need none).
        if request.method not in ("GET", "HEAD", "OPTIONS") and _csrf.process_view(request, None, (), {}) is not None:
            raise errors.ApiError(403, errors.USER_NOT_AUTHORIZED, "CSRF token missing or incorrect.")
        return request.user  # type: ignore[return-value]
    return None


def body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a dict: JSON (graphs, layouts) or a form (groups), by content."""
    raw = request.body
    if not raw:
        return {}
    content_type = request.META.get("CONTENT_TYPE", "")
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise errors.bad_request(f"The request body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        return data
    form = QueryDict(raw, encoding="utf-8")
    return {k: form.get(k) for k in form.keys()}


def query_list(request: HttpRequest, name: str) -> list[str]:
    """PHP-style arrays: `names[]=a&names[]=b` (also accepted without the brackets)."""
    return request.GET.getlist(f"{name}[]") + request.GET.getlist(name)


def query_int(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer.") from None
    if number < 0:
        raise errors.bad_request(f"{name} must not be negative.")
    return number


def query_flag(request: HttpRequest, name: str) -> bool | None:
    value = request.GET.get(name)
    if value in (None, ""):
        return None
    return value.lower() in ("1", "true", "yes")


def as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f"{name} must be an integer.") from None


Handler = Callable[..., Any]


def api_view(methods: dict[str, Handler]) -> Callable[..., HttpResponse]:
    """One URL, one handler per method; every answer and every error is GraphSpace JSON."""

    @csrf_exempt
    @wraps(next(iter(methods.values())))
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        try:
            user = request_user(request)
            if user is None:
                raise errors.not_authenticated()
            handler = methods.get(request.method or "")
            if handler is None:
                raise errors.method_not_allowed(request.method or "")
            ids = {k: int(v) if k.endswith("_id") else v for k, v in kwargs.items()}
            status, payload = handler(request, user, **ids)
            return JsonResponse(payload, status=status, safe=False)
        except errors.ApiError as error:
            return errors.error_response(request, error)
        except ActionError as error:
            return errors.error_response(request, errors.bad_request(str(error), error.code))
        except (GraphFormatError, IntegrityError) as error:
            return errors.error_response(request, errors.bad_request(str(error)))
        except Exception as error:
            log.exception("API error on %s %s", request.method, request.path)
            return errors.error_response(request, errors.ApiError(500, 2000, f"Internal error: {type(error).__name__}"))

    return view
