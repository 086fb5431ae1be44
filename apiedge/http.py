"""Request plumbing for the site's JSON APIs (the REST API v1 and the notifications API):
authentication (HTTP Basic or the session with its CSRF token), one view per URL, every
answer and every error as GraphSpace JSON. Each API passes `translate` to map its own domain
errors (graphspace/api/errors.py, notifications/api.py); the parsing of bodies is in
apiedge/schemas.py."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from apiedge import errors

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


def basic_auth_user(header: str, request: HttpRequest) -> AbstractBaseUser | None:
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
        user = get_user_model().objects.filter(pk=hit[0], is_active=True).first()
        if user is not None and getattr(user, "email", None) == email:
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


def request_user(request: HttpRequest) -> AbstractBaseUser | None:
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


Handler = Callable[..., Any]
# An API's own errors (a domain error) as the ApiError to answer, or None for "not mine".
Translate = Callable[[Exception], "errors.ApiError | None"]


def api_view(methods: dict[str, Handler], translate: Translate | None = None) -> Callable[..., HttpResponse]:
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
        except RequestDataTooBig:
            return errors.error_response(request, errors.ApiError(413, errors.BAD_REQUEST, "The request body is too large."))
        except (TooManyFieldsSent, TooManyFilesSent):
            return errors.error_response(request, errors.bad_request("The request has too many parameters."))
        except DataError as error:
            # A value PostgreSQL cannot take (the schemas let none through; this is the net).
            log.warning("API value refused by the database on %s %s: %s", request.method, request.path, error)
            return errors.error_response(request, errors.bad_request("The request has a value out of range."))
        except Exception as error:
            translated = translate(error) if translate is not None else None
            if translated is not None:
                return errors.error_response(request, translated)
            log.exception("API error on %s %s", request.method, request.path)
            return errors.error_response(request, errors.ApiError(500, 2000, f"Internal error: {type(error).__name__}"))

    return view
