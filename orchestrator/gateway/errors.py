"""Gateway errors as data, and each API's own error body (DESIGN §4.6)."""
from __future__ import annotations

import attrs

# status → (OpenAI error type, Anthropic error type)
_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    404: ("not_found_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error"),
    499: ("cancelled", "api_error"),
    500: ("server_error", "api_error"),
    502: ("upstream_error", "api_error"),
    503: ("service_unavailable", "overloaded_error"),
}


@attrs.frozen
class GatewayError(Exception):
    status: int
    message: str
    code: str | None = None          # OpenAI's error.code (e.g. model_not_found); also logged
    headers: tuple[tuple[str, str], ...] = ()   # the turn's x-orchestrator-* headers, once it has some

    def openai_body(self) -> dict:
        kind = _TYPES.get(self.status, _TYPES[500])[0]
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.code}}

    def anthropic_body(self) -> dict:
        kind = _TYPES.get(self.status, _TYPES[500])[1]
        return {"type": "error", "error": {"type": kind, "message": self.message}}


def bad_request(message: str) -> GatewayError:
    return GatewayError(400, message, "invalid_request")


# A turn's failure code (TurnOutcome.error / the router's error_code) → HTTP status.
_FAILURE_STATUS = {
    "provider_rate_limit": 429,
    "provider_bad_request": 400,
    "provider_context_length": 400,
    "no_model_available": 503,
    "no_model_available_for_tier": 503,
    "invalid_config": 503,
    "invalid_override": 404,
    "shutting_down": 503,
}


def turn_failure(code: str | None, message: str) -> GatewayError:
    """A failed turn as the HTTP error a client of that API expects: upstream failures are 502."""
    code = code or "turn_failed"
    status = _FAILURE_STATUS.get(code, 502 if code.startswith("provider_") else 500)
    return GatewayError(status, message or code, code)
