"""The one exception hierarchy. HTTP statuses are attached here and mapped in ``shared.http`` only."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure the client caused or may act on: rendered as a JSON error with a 4xx status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.headers: dict[str, str] = {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class ValidationFailed(AppError):
    status, code = 422, "validation_failed"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class MethodNotAllowed(AppError):
    status, code = 405, "method_not_allowed"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class RateLimited(AppError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"retry_after_seconds": retry_after})
        self.headers["Retry-After"] = str(max(1, retry_after))


class ServiceUnavailable(AppError):
    """A dependency (the database, file storage, the key service) is down: 503, and the client may
    retry after a few seconds."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.headers["Retry-After"] = "5"


# --- event handling: exactly two outcomes for a failed CloudEvent --------------------------------
class PermanentEventError(Exception):
    """The message can never succeed (malformed, impossible): log it, dead-letter it, acknowledge it."""

    def __init__(self, reason: str, *, code: str = "invalid_message") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientEventError(Exception):
    """The message may succeed later (database down, provider timeout): raise so Pub/Sub redelivers."""
