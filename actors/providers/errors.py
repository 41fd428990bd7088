"""One seam that turns every provider failure into a classified ``ProviderError``.

Classification uses only structured signals: the HTTP status, the error body's ``type`` and
``code`` fields, and the exception class. Message text is never matched: vendors reword messages
freely, and a misread message would make the retry loop hammer a request that can never succeed.

Anthropic has no structured field for "prompt too long" (it is a plain ``invalid_request_error``
with an explanatory message). We therefore decide it from our own structured knowledge: the
adapter estimates the request's size against the model's ``max_context_tokens`` and passes
``near_context_limit``; a 400 ``invalid_request_error`` on a request near the limit is
``context_length``, otherwise ``bad_request``. A 413 / ``request_too_large`` (body over the
byte limit) is also ``context_length``: the remedy — send less — is the same.
"""
from __future__ import annotations

import email.utils
import json
import time
from typing import Any
from collections.abc import Mapping

import httpcore
import httpx

from actors.providers.base import ErrorClass, ProviderError

# OpenAI puts the precise reason in ``code``; it wins over status and type.
_CODE_CLASSES = {
    "context_length_exceeded": ErrorClass.CONTEXT_LENGTH,
    "rate_limit_exceeded": ErrorClass.RATE_LIMIT,
    "invalid_api_key": ErrorClass.AUTH,
    # A 429 that no amount of waiting fixes: the account is out of credit. Treated as a
    # configuration problem (like a bad key) so the retry loop does not spin on it.
    "insufficient_quota": ErrorClass.AUTH,
}

_STATUS_CLASSES = {
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    408: ErrorClass.TIMEOUT,
    413: ErrorClass.CONTEXT_LENGTH,
    429: ErrorClass.RATE_LIMIT,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.SERVER_ERROR,
    503: ErrorClass.SERVER_ERROR,
    504: ErrorClass.SERVER_ERROR,
    529: ErrorClass.SERVER_ERROR,
}

# Anthropic error types, plus OpenAI's, for errors that arrive without a status (SSE error events).
_TYPE_CLASSES = {
    "authentication_error": ErrorClass.AUTH,
    "permission_error": ErrorClass.AUTH,
    "rate_limit_error": ErrorClass.RATE_LIMIT,
    "overloaded_error": ErrorClass.SERVER_ERROR,
    "api_error": ErrorClass.SERVER_ERROR,
    "server_error": ErrorClass.SERVER_ERROR,
    "timeout_error": ErrorClass.TIMEOUT,
    "request_too_large": ErrorClass.CONTEXT_LENGTH,
    "insufficient_quota": ErrorClass.AUTH,
    "not_found_error": ErrorClass.BAD_REQUEST,
    "invalid_request_error": ErrorClass.BAD_REQUEST,
}


def classify(
    *,
    status: int | None,
    error_type: str | None = None,
    code: str | None = None,
    near_context_limit: bool = False,
) -> ErrorClass:
    if code in _CODE_CLASSES:
        return _CODE_CLASSES[code]
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status is not None and 500 <= status < 600:
        return ErrorClass.SERVER_ERROR
    if error_type == "invalid_request_error" and near_context_limit:
        return ErrorClass.CONTEXT_LENGTH
    if error_type in _TYPE_CLASSES:
        return _TYPE_CLASSES[error_type]
    if status is not None and 400 <= status < 500:
        return ErrorClass.CONTEXT_LENGTH if near_context_limit and status == 400 else ErrorClass.BAD_REQUEST
    # An unrecognised error with no status arrived mid-stream: the server failed us.
    return ErrorClass.SERVER_ERROR


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date), else None."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    # HTTP dates are wall-clock times, so compare with the wall clock, not trio's clock.
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_fields(payload: Any) -> tuple[str | None, str | None, str]:
    """(type, code, message) from either vendor's error object, tolerating odd shapes."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return None, None, ""
    def text(name: str) -> str | None:
        value = err.get(name)
        return value if isinstance(value, str) else None

    return text("type"), text("code"), text("message") or ""


def from_payload(
    payload: Any,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    near_context_limit: bool = False,
) -> ProviderError:
    """An error body (HTTP error response or SSE ``error`` event) as a ``ProviderError``."""
    etype, code, message = _error_fields(payload)
    error_class = classify(status=status, error_type=etype, code=code, near_context_limit=near_context_limit)
    label = "/".join(x for x in (str(status) if status else None, etype, code) if x) or "error"
    return ProviderError(
        error_class,
        f"{label}: {message}" if message else label,
        status=status,
        retry_after=parse_retry_after(headers) if headers is not None else None,
    )


def from_response(
    status: int, body: bytes, headers: Mapping[str, str], *, near_context_limit: bool = False
) -> ProviderError:
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None  # e.g. an HTML page from a proxy: the status alone decides
    return from_payload(payload, status=status, headers=headers, near_context_limit=near_context_limit)


# What the transport raises (httpcore, the adapters' transport; httpx's tree when a caller uses
# httpx). httpcore has no common base class; httpx's own exceptions wrap these same classes.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError, httpx.StreamError, httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
    httpcore.UnsupportedProtocol, httpcore.ProxyError,
)


def from_exception(exc: Exception) -> ProviderError:
    """The transport's exception tree mapped once. DNS and TLS failures surface as ``ConnectError``."""
    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
        error_class = ErrorClass.TIMEOUT
    elif isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError,
                          httpcore.UnsupportedProtocol, httpcore.LocalProtocolError)):
        error_class = ErrorClass.BAD_REQUEST  # our URL or request is wrong; retrying cannot help
    elif isinstance(exc, (httpx.TransportError, httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError)):
        error_class = ErrorClass.NETWORK  # ConnectError, ReadError, WriteError, RemoteProtocolError, ProxyError
    elif isinstance(exc, httpx.DecodingError):
        error_class = ErrorClass.SERVER_ERROR
    else:
        error_class = ErrorClass.NETWORK
    return ProviderError(error_class, f"{type(exc).__name__}: {exc}")


def malformed(what: str) -> ProviderError:
    """The provider answered 2xx with something we cannot parse."""
    return ProviderError(ErrorClass.SERVER_ERROR, f"malformed response: {what}")
