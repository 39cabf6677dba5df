"""The one exception hierarchy. HTTP statuses are attached here and mapped in ``shared.http`` only;
every code and its status is in the catalogue (``shared.error_codes``), which a test holds these to.

Domain code raises these (never a status by hand); the boundary decides: ``shared.http`` renders them
as JSON with their status, ``shared.events`` dead-letters a 4xx and lets Pub/Sub retry anything else.
Database errors become these in one place: ``shared.db.domain_error``.
"""

from __future__ import annotations

from typing import Any

from shared import error_codes as codes


class AppError(Exception):
    """A failure the client caused or may act on: rendered as a JSON error with a 4xx status."""

    status = 400
    code = codes.BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}
        self.headers: dict[str, str] = {}


class BadRequest(AppError):
    status, code = 400, codes.BAD_REQUEST


class ValidationFailed(AppError):
    status, code = 422, codes.VALIDATION_FAILED


class Unauthorized(AppError):
    status, code = 401, codes.UNAUTHORIZED


class Forbidden(AppError):
    status, code = 403, codes.FORBIDDEN


class NotFound(AppError):
    status, code = 404, codes.NOT_FOUND


class MethodNotAllowed(AppError):
    status, code = 405, codes.METHOD_NOT_ALLOWED


class Conflict(AppError):
    status, code = 409, codes.CONFLICT


class PayloadTooLarge(AppError):
    status, code = 413, codes.PAYLOAD_TOO_LARGE


class UnsupportedMediaType(AppError):
    status, code = 415, codes.UNSUPPORTED_MEDIA_TYPE


class InsufficientFunds(Conflict):
    """A debit the balance cannot cover (the ledger's EP001)."""

    code = codes.INSUFFICIENT_FUNDS


class IdempotencyConflict(Conflict):
    """An idempotency key reused for a different entry (the ledger's EP003)."""

    code = codes.IDEMPOTENCY_CONFLICT


class NotPending(Conflict):
    """A reversal of an entry that cleared, or was never pending (the ledger's EP031)."""

    code = codes.NOT_PENDING


class NotACredit(Conflict):
    """A recovery of an entry that is not a credit (the ledger's EP032)."""

    code = codes.NOT_A_CREDIT


class RateLimited(AppError):
    status, code = 429, codes.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"retry_after_seconds": retry_after})
        self.headers["Retry-After"] = str(max(1, retry_after))


class ServiceUnavailable(AppError):
    """A dependency (the database, file storage, the key service) is down: 503, and the client may
    retry after a few seconds."""

    status, code = 503, codes.SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.headers["Retry-After"] = "5"


class InternalError(AppError):
    """Our own failure (a bug): 500, with a message that gives nothing away; the details are in the log."""

    status, code = 500, codes.INTERNAL_ERROR

    def __init__(self, message: str = "something went wrong on our side; it has been logged") -> None:
        super().__init__(message)


# --- event handling: exactly two outcomes for a failed CloudEvent --------------------------------
class PermanentEventError(Exception):
    """The message can never succeed (malformed, impossible): log it, dead-letter it, acknowledge it."""

    def __init__(self, reason: str, *, code: str = codes.INVALID_MESSAGE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
