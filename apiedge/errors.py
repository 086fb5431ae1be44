"""GraphSpace's JSON error body and codes (graphspace-api.md 1.2), for every JSON API of the
site: the REST API v1 (graphspace/api/) and the notifications API (notifications/api.py).

No domain errors here: each API maps its own (graphspace/api/errors.py: from_action)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

ERROR_DETAILS = "http://manual.graphspace.org/en/latest/Programmers_Guide.html#error-codes"

USER_ALREADY_EXISTS = 1000
METHOD_NOT_ALLOWED = 1001
BAD_REQUEST = 1002
USER_NOT_AUTHORIZED = 1004
USER_NOT_AUTHENTICATED = 1005
IS_PUBLIC_NOT_SET = 1006
NOT_ALLOWED_GRAPH_ACCESS = 1007
CANNOT_CREATE_GRAPH_FOR_OTHER_USER = 1008
NOT_ALLOWED_GROUP_ACCESS = 1010
CANNOT_CREATE_GROUP_FOR_OTHER_USER = 1011
NOT_ALLOWED_LAYOUT_ACCESS = 1012
CANNOT_CREATE_LAYOUT_FOR_OTHER_USER = 1013
LAYOUT_NAME_ALREADY_EXISTS = 1014
GRAPH_NAME_SIZE = 1015

NOT_AUTHORIZED_MESSAGE = (
    "You are not authorized to access this resource, create an account and contact "
    "resource's owner for permission to access this resource."
)


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str, code: int = BAD_REQUEST) -> ApiError:
    return ApiError(400, code, message)


def not_authorized() -> ApiError:
    """GraphSpace answers a missing resource like a forbidden one: no 404s in API v1."""
    return ApiError(403, USER_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE)


def not_authenticated() -> ApiError:
    return ApiError(401, USER_NOT_AUTHENTICATED, "User authentication failed.")


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, METHOD_NOT_ALLOWED, f"The method {method} is not allowed on this resource.")


def error_response(request: HttpRequest, error: ApiError) -> JsonResponse:
    path = request.get_full_path()
    return JsonResponse(
        {
            "status_code": error.status,
            "error_message": error.message,
            "error_code": error.code,
            "error_details": ERROR_DETAILS,
            "http_request": f"{request.method} {path}",
        },
        status=error.status,
    )
