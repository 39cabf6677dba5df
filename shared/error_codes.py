"""The error catalogue: every error code EarnPay answers with (HTTP) or dead-letters an event under,
each a named constant with its HTTP status and what it means, in one table (``CATALOGUE``).

A status of ``None`` marks a code only an event handler uses (``PermanentEventError``: logged, recorded
in ``dead_letters`` and acknowledged); it is never an HTTP answer. ``docs/errors.md`` is rendered from
this table (``render_markdown``) and a test keeps it current; another test fails when code in
``functions/`` or ``shared/`` raises a code that is not here, or raises it with another status.
A leaf module: it imports nothing of ours.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorCode(NamedTuple):
    status: int | None  # the HTTP status; None: a dead-letter code of an event only
    meaning: str


ACCOUNT_INACTIVE = "account_inactive"
ACCOUNT_NOT_ACTIVE = "account_not_active"
ADJUSTMENT_NOT_FOUND = "adjustment_not_found"
ALREADY_ERASED = "already_erased"
AMOUNT_BELOW_MINIMUM = "amount_below_minimum"
BAD_REQUEST = "bad_request"
BODY_NOT_OBJECT = "body_not_object"
CONFLICT = "conflict"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
DATABASE_BUSY = "database_busy"
DATABASE_UNAVAILABLE = "database_unavailable"
DOCUMENT_NOT_FOUND = "document_not_found"
EMAIL_TAKEN = "email_taken"
ENTRY_NOT_FOUND = "entry_not_found"
EXPORT_IN_PROGRESS = "export_in_progress"
EXPORT_NOT_FOUND = "export_not_found"
FORBIDDEN = "forbidden"
IDEMPOTENCY_CONFLICT = "idempotency_conflict"
IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
INSUFFICIENT_FUNDS = "insufficient_funds"
INTERNAL_ERROR = "internal_error"
INVALID_AMOUNT = "invalid_amount"
INVALID_CHARACTERS = "invalid_characters"
INVALID_CREDENTIALS = "invalid_credentials"
INVALID_CREDIT_REQUEST = "invalid_credit_request"
INVALID_CURSOR = "invalid_cursor"
INVALID_DECISION = "invalid_decision"
INVALID_ENTRY = "invalid_entry"
INVALID_FLAG = "invalid_flag"
INVALID_FLAG_KEY = "invalid_flag_key"
INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
INVALID_LIMIT = "invalid_limit"
INVALID_MESSAGE = "invalid_message"
INVALID_PREFIX = "invalid_prefix"
INVALID_ROLLOUT_PERCENT = "invalid_rollout_percent"
INVALID_SESSION = "invalid_session"
INVALID_STATUS = "invalid_status"
INVALID_TASK_OPTIONS = "invalid_task_options"
INVALID_VIDEO = "invalid_video"
INVALID_VIDEO_ID = "invalid_video_id"
JSON_TOO_DEEP = "json_too_deep"
KEY_SERVICE_UNAVAILABLE = "key_service_unavailable"
KYC_ALREADY_VERIFIED = "kyc_already_verified"
KYC_NO_DOCUMENTS = "kyc_no_documents"
KYC_NOT_IN_REVIEW = "kyc_not_in_review"
KYC_REQUIRED = "kyc_required"
LAST_ADMIN = "last_admin"
LOGIN_TEMPORARILY_LOCKED = "login_temporarily_locked"
MALFORMED_EVENT = "malformed_event"
MALFORMED_JSON = "malformed_json"
MALFORMED_MESSAGE = "malformed_message"
METHOD_NOT_ALLOWED = "method_not_allowed"
MISSING_SESSION = "missing_session"
NO_PAYOUT_METHOD = "no_payout_method"
NOT_PENDING = "not_pending"
NOT_A_VIDEO_REWARD = "not_a_video_reward"
NOT_FOUND = "not_found"
NOT_PUBSUB = "not_pubsub"
OWN_ADJUSTMENT = "own_adjustment"
OWN_KYC_DECISION = "own_kyc_decision"
OWN_PAYOUT = "own_payout"
OWN_REVERSAL = "own_reversal"
PASSWORD_UNCHANGED = "password_unchanged"  # noqa: S105  # an error code, not a password
PAYLOAD_TOO_LARGE = "payload_too_large"
PAYOUT_METHOD_IN_USE = "payout_method_in_use"
PAYOUT_METHOD_NOT_FOUND = "payout_method_not_found"
PAYOUT_METHOD_UNSUPPORTED = "payout_method_unsupported"
PAYOUT_NOT_CANCELLABLE = "payout_not_cancellable"
PAYOUT_NOT_FOUND = "payout_not_found"
PAYOUT_NOT_PENDING = "payout_not_pending"
PAYOUT_USER_NOT_ELIGIBLE = "payout_user_not_eligible"
PAYOUTS_IN_FLIGHT = "payouts_in_flight"
POSITION_OUT_OF_RANGE = "position_out_of_range"
PROVIDER_MISCONFIGURED = "provider_misconfigured"
RATE_LIMITED = "rate_limited"
REASON_REQUIRED = "reason_required"
REASON_TOO_LONG = "reason_too_long"
REAUTHENTICATION_FAILED = "reauthentication_failed"
REPEATED_QUERY_PARAMETER = "repeated_query_parameter"
REQUEST_IN_PROGRESS = "request_in_progress"
REVIEWER_FORBIDDEN = "reviewer_forbidden"
REWARD_MISMATCH = "reward_mismatch"
ROLE_FORBIDDEN = "role_forbidden"
ROUTE_NOT_FOUND = "route_not_found"
SERVICE_UNAVAILABLE = "service_unavailable"
STAFF_ACCOUNT = "staff_account"
STORAGE_UNAVAILABLE = "storage_unavailable"
TOO_MANY_DOCUMENTS = "too_many_documents"
TOO_MANY_OPEN_UPLOADS = "too_many_open_uploads"
TOO_MANY_PAYOUT_METHODS = "too_many_payout_methods"
UNAUTHORIZED = "unauthorized"
UNKNOWN_ENTRY_TYPE = "unknown_entry_type"
UNKNOWN_EXPORT = "unknown_export"
UNKNOWN_QUERY_PARAMETER = "unknown_query_parameter"
UNKNOWN_REFERRAL_CODE = "unknown_referral_code"
UNKNOWN_ROLE = "unknown_role"
UNKNOWN_TASK = "unknown_task"
UNKNOWN_USER = "unknown_user"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
USER_ERASED = "user_erased"
USER_NOT_FOUND = "user_not_found"
VALIDATION_FAILED = "validation_failed"
VIDEO_NOT_FOUND = "video_not_found"
VIDEO_SLUG_TAKEN = "video_slug_taken"
ACCOUNT_ERASED = "account_erased"
ACCOUNT_SUSPENDED = "account_suspended"
ACCOUNT_UNDER_REVIEW = "account_under_review"
INVALID_RISK_STATE = "invalid_risk_state"
OWN_ACCOUNT = "own_account"
RISK_STATE_UNCHANGED = "risk_state_unchanged"
RULE_NOT_FOUND = "rule_not_found"
RULE_UNCHANGED = "rule_unchanged"
EMAIL_ALREADY_VERIFIED = "email_already_verified"
EMAIL_UNCHANGED = "email_unchanged"
EMAIL_UNVERIFIED = "email_unverified"
INVALID_MFA_CODE = "invalid_mfa_code"
INVALID_MFA_CODE_FORMAT = "invalid_mfa_code_format"
INVALID_TOKEN = "invalid_token"  # noqa: S105  # an error code, not a token
MAIL_MISCONFIGURED = "mail_misconfigured"
MFA_ALREADY_ENROLLED = "mfa_already_enrolled"
MFA_CODE_REQUIRED = "mfa_code_required"
MFA_LOCKED = "mfa_locked"
MFA_NOT_ENROLLED = "mfa_not_enrolled"
MFA_NOT_STARTED = "mfa_not_started"
MFA_REQUIRED = "mfa_required"
OWN_MFA_RESET = "own_mfa_reset"
STEP_UP_REQUIRED = "step_up_required"
WITHHELD_NOT_FOUND = "withheld_not_found"
WITHHELD_RESOLVED = "withheld_resolved"
NOT_A_CREDIT = "not_a_credit"
ALLOWED_SOURCES_NOT_ALLOWED = "allowed_sources_not_allowed"
INVALID_RANGE = "invalid_range"
KEY_URL_NOT_ALLOWED = "key_url_not_allowed"
KEY_URL_REQUIRED = "key_url_required"
NO_SECRETS_FOR_KIND = "no_secrets_for_kind"
PARTNER_EXISTS = "partner_exists"
THROTTLED = "throttled"
UNKNOWN_PARTNER = "unknown_partner"
UNKNOWN_TRANSACTION = "unknown_transaction"
SECRET_STORE_UNAVAILABLE = "secret_store_unavailable"  # noqa: S105  # an error code, not a secret

CATALOGUE: dict[str, ErrorCode] = {
    ALLOWED_SOURCES_NOT_ALLOWED: ErrorCode(422, "allowed_sources applies to offerwall partners"),
    INVALID_RANGE: ErrorCode(422, "the report covers 1 to 367 days: from <= to"),
    KEY_URL_NOT_ALLOWED: ErrorCode(422, "an offerwall partner signs with a secret, not a key endpoint"),
    KEY_URL_REQUIRED: ErrorCode(422, "a rewarded-video partner needs key_url (its public-key endpoint)"),
    NO_SECRETS_FOR_KIND: ErrorCode(409, "only offerwall partners sign with a secret"),
    PARTNER_EXISTS: ErrorCode(409, "a partner with this id exists"),
    THROTTLED: ErrorCode(429, "too many refused partner callbacks from this address"),
    UNKNOWN_PARTNER: ErrorCode(404, "no such partner"),
    UNKNOWN_TRANSACTION: ErrorCode(404, "no reward with this transaction id from this partner"),
    SECRET_STORE_UNAVAILABLE: ErrorCode(503, "the secret store (Secret Manager) could not be reached or refused the call; retry later"),
    NOT_A_CREDIT: ErrorCode(409, "the entry is not a credit, so there is nothing to take back"),
    WITHHELD_NOT_FOUND: ErrorCode(404, "no such withheld reward for this user"),
    WITHHELD_RESOLVED: ErrorCode(409, "this withheld reward was … already"),
    EMAIL_ALREADY_VERIFIED: ErrorCode(409, "this address is already verified"),
    EMAIL_UNCHANGED: ErrorCode(422, "that is already your address"),
    EMAIL_UNVERIFIED: ErrorCode(403, "confirm your email address (the link we sent you) before asking for a payout"),
    INVALID_MFA_CODE: ErrorCode(401, "the code is wrong, expired or was already used"),
    INVALID_MFA_CODE_FORMAT: ErrorCode(422, "enter the 6-digit code your authenticator app shows"),
    INVALID_TOKEN: ErrorCode(400, "this link is invalid, expired or already used"),
    MAIL_MISCONFIGURED: ErrorCode(None, "mail provider misconfigured: …"),
    MFA_ALREADY_ENROLLED: ErrorCode(409, "two-factor authentication is already on for this account"),
    MFA_CODE_REQUIRED: ErrorCode(401, "enter the code from your authenticator app (mfa_code)"),
    MFA_LOCKED: ErrorCode(429, "too many wrong codes"),
    MFA_NOT_ENROLLED: ErrorCode(409, "two-factor authentication is not set up for this account"),
    MFA_NOT_STARTED: ErrorCode(409, "start the enrolment first (POST /auth/mfa/enrol)"),
    MFA_REQUIRED: ErrorCode(403, "staff accounts need two-factor authentication: enrol (POST /auth/mfa/enrol) or sign in with your code"),
    OWN_MFA_RESET: ErrorCode(403, "nobody can reset their own two-factor authentication"),
    STEP_UP_REQUIRED: ErrorCode(403, "this moves money: enter a two-factor code first (POST /auth/mfa/step-up)"),
    ACCOUNT_ERASED: ErrorCode(409, "this account was erased"),
    ACCOUNT_SUSPENDED: ErrorCode(403, "this account is suspended and cannot earn while our team reviews it"),
    ACCOUNT_UNDER_REVIEW: ErrorCode(403, "cashouts are paused while our team reviews this account"),
    INVALID_RISK_STATE: ErrorCode(422, "unknown risk state …"),
    OWN_ACCOUNT: ErrorCode(409, "staff cannot decide on their own account"),
    RISK_STATE_UNCHANGED: ErrorCode(409, "the account is already in …"),
    RULE_NOT_FOUND: ErrorCode(404, "no such rule"),
    RULE_UNCHANGED: ErrorCode(422, "nothing to change"),
    ACCOUNT_INACTIVE: ErrorCode(403, "this account is not active"),
    ACCOUNT_NOT_ACTIVE: ErrorCode(403, "your account is not active"),
    ADJUSTMENT_NOT_FOUND: ErrorCode(404, "no adjustment was committed under this Idempotency-Key"),
    ALREADY_ERASED: ErrorCode(409, "this account is already erased"),
    AMOUNT_BELOW_MINIMUM: ErrorCode(422, "the minimum payout is …"),
    BAD_REQUEST: ErrorCode(400, "the request is malformed"),
    BODY_NOT_OBJECT: ErrorCode(422, "the body must be a JSON object"),
    CONFLICT: ErrorCode(409, "the request conflicts with the current state"),
    CONFLICTING_DUPLICATE: ErrorCode(None, "a credit request id was applied before with a different user, type or amount (dead-lettered)"),
    DATABASE_BUSY: ErrorCode(503, "the database is busy; try again shortly"),
    DATABASE_UNAVAILABLE: ErrorCode(503, "the database is unavailable; try again shortly"),
    DOCUMENT_NOT_FOUND: ErrorCode(404, "no such document"),
    EMAIL_TAKEN: ErrorCode(409, "an account with this email already exists"),
    ENTRY_NOT_FOUND: ErrorCode(404, "no such ledger entry for this user"),
    EXPORT_IN_PROGRESS: ErrorCode(409, "an export was just completed; ask again"),
    EXPORT_NOT_FOUND: ErrorCode(404, "no such export"),
    FORBIDDEN: ErrorCode(403, "not allowed"),
    IDEMPOTENCY_CONFLICT: ErrorCode(409, "this idempotency key was already used for a different entry"),
    IDEMPOTENCY_KEY_REQUIRED: ErrorCode(400, "manual adjustments need an Idempotency-Key header"),
    IDEMPOTENCY_KEY_REUSED: ErrorCode(422, "this Idempotency-Key was used with a different request"),
    INSUFFICIENT_FUNDS: ErrorCode(409, "the available balance is too low for this"),
    INTERNAL_ERROR: ErrorCode(500, "something went wrong on our side; it has been logged"),
    INVALID_AMOUNT: ErrorCode(422, "amount must be a non-zero integer of micro-dollars within limits"),
    INVALID_CHARACTERS: ErrorCode(422, "the reason contains characters that are not allowed"),
    INVALID_CREDENTIALS: ErrorCode(401, "the email or password is wrong"),
    INVALID_CREDIT_REQUEST: ErrorCode(None, "a credit request on earnings-credit-requests failed validation (dead-lettered)"),
    INVALID_CURSOR: ErrorCode(422, "the cursor is not valid for this list"),
    INVALID_DECISION: ErrorCode(422, "decision must be 'verified' or 'rejected'"),
    INVALID_ENTRY: ErrorCode(422, "that entry is not allowed for its type"),
    INVALID_FLAG: ErrorCode(422, "enabled must be true or false"),
    INVALID_FLAG_KEY: ErrorCode(422, "flag key must be 2-64 characters: lower case letters, digits, '_', '.', '-'"),
    INVALID_IDEMPOTENCY_KEY: ErrorCode(422, "Idempotency-Key must be 1-128 printable ASCII characters"),
    INVALID_LIMIT: ErrorCode(422, "limit must be 1-200"),
    INVALID_MESSAGE: ErrorCode(None, "a Pub/Sub message with a missing or out-of-range field (dead-lettered)"),
    INVALID_PREFIX: ErrorCode(400, "email_prefix must not be blank"),
    INVALID_ROLLOUT_PERCENT: ErrorCode(422, "rollout_percent must be an integer from 0 to 100"),
    INVALID_SESSION: ErrorCode(401, "sign in first"),
    INVALID_STATUS: ErrorCode(422, "status must be one of …"),
    INVALID_TASK_OPTIONS: ErrorCode(None, "bad options for a maintenance task (dead-lettered; the CLI exits 2)"),
    INVALID_VIDEO: ErrorCode(422, "the video is invalid"),
    INVALID_VIDEO_ID: ErrorCode(422, "the video id must be a UUID"),
    JSON_TOO_DEEP: ErrorCode(400, "the body nests deeper than … levels"),
    KEY_SERVICE_UNAVAILABLE: ErrorCode(503, "the key service (Cloud KMS) could not be reached; retry later"),
    KYC_ALREADY_VERIFIED: ErrorCode(409, "your identity is already verified"),
    KYC_NO_DOCUMENTS: ErrorCode(409, "there is no uploaded document to verify against"),
    KYC_NOT_IN_REVIEW: ErrorCode(409, "KYC can only be decided while in review (it is …)"),
    KYC_REQUIRED: ErrorCode(403, "verify your identity (KYC) before asking for a payout"),
    LAST_ADMIN: ErrorCode(409, "this is the last active admin; promote another admin first"),
    LOGIN_TEMPORARILY_LOCKED: ErrorCode(429, "too many failed attempts for this account; try again later or from a device you used before"),
    MALFORMED_EVENT: ErrorCode(None, "a storage event whose data is not an object resource (dead-lettered)"),
    MALFORMED_JSON: ErrorCode(400, "the body is not valid JSON"),
    MALFORMED_MESSAGE: ErrorCode(None, "a Pub/Sub message whose data is not a base64 JSON object of the right shape (dead-lettered)"),
    METHOD_NOT_ALLOWED: ErrorCode(405, "the route exists but not for this method; the Allow header lists those it takes"),
    MISSING_SESSION: ErrorCode(401, "send Authorization: Bearer <session token>"),
    NO_PAYOUT_METHOD: ErrorCode(422, "add a payout method first (POST /payouts/methods)"),
    NOT_PENDING: ErrorCode(409, "the entry is not pending (it cleared, or never was), so it cannot be reversed"),
    NOT_A_VIDEO_REWARD: ErrorCode(422, "reward_entry_id is not a video reward of this user"),
    NOT_FOUND: ErrorCode(404, "no such resource"),
    NOT_PUBSUB: ErrorCode(None, "an event that is not a Pub/Sub message (dead-lettered)"),
    OWN_ADJUSTMENT: ErrorCode(403, "staff cannot adjust their own balance"),
    OWN_KYC_DECISION: ErrorCode(403, "nobody may decide on their own identity"),
    OWN_PAYOUT: ErrorCode(403, "staff cannot … their own payout"),
    OWN_REVERSAL: ErrorCode(403, "staff cannot reverse their own credits"),
    PASSWORD_UNCHANGED: ErrorCode(422, "the new password must differ from the current one"),
    PAYLOAD_TOO_LARGE: ErrorCode(413, "the body is larger than the limit"),
    PAYOUT_METHOD_IN_USE: ErrorCode(409, "a payout to this method is still in progress: cancel it, or wait until it is paid or fails"),
    PAYOUT_METHOD_NOT_FOUND: ErrorCode(404, "no such payout method"),
    PAYOUT_METHOD_UNSUPPORTED: ErrorCode(
        409, "a payout to a bank account added before they were withdrawn: EarnPay pays through PayPal only"
    ),
    PAYOUT_NOT_CANCELLABLE: ErrorCode(409, "this payout is … and can no longer be cancelled"),
    PAYOUT_NOT_FOUND: ErrorCode(404, "no such payout"),
    PAYOUT_NOT_PENDING: ErrorCode(409, "this payout is …; only requested payouts can be …d"),
    PAYOUT_USER_NOT_ELIGIBLE: ErrorCode(409, "the payout's owner is not eligible: …"),
    PAYOUTS_IN_FLIGHT: ErrorCode(409, "a payout is on its way; erase once it is paid, or cancel it first"),
    POSITION_OUT_OF_RANGE: ErrorCode(422, "position_seconds is beyond the end of the video"),
    PROVIDER_MISCONFIGURED: ErrorCode(None, "the payout provider settings are unusable (dead-lettered)"),
    RATE_LIMITED: ErrorCode(429, "too many requests; Retry-After says when to try again"),
    REASON_REQUIRED: ErrorCode(422, "a reason is required"),
    REASON_TOO_LONG: ErrorCode(422, "the reason must be at most … characters"),
    REAUTHENTICATION_FAILED: ErrorCode(401, "the password is wrong"),
    REPEATED_QUERY_PARAMETER: ErrorCode(422, "query parameter … given more than once"),
    REQUEST_IN_PROGRESS: ErrorCode(409, "a request with this Idempotency-Key is still in progress"),
    REVIEWER_FORBIDDEN: ErrorCode(403, "unknown reviewer"),
    REWARD_MISMATCH: ErrorCode(422, "reward_micros … differs from the reward entry's …"),
    ROLE_FORBIDDEN: ErrorCode(403, "your role may not do this"),
    ROUTE_NOT_FOUND: ErrorCode(404, "no route … /……"),
    SERVICE_UNAVAILABLE: ErrorCode(503, "a dependency is down; retry after Retry-After seconds"),
    STAFF_ACCOUNT: ErrorCode(409, "staff accounts cannot be erased; ask an admin to remove your role first"),
    STORAGE_UNAVAILABLE: ErrorCode(503, "file storage is unavailable; nothing was erased, try again shortly"),
    TOO_MANY_DOCUMENTS: ErrorCode(429, "at most … documents a day; try again later"),
    TOO_MANY_OPEN_UPLOADS: ErrorCode(429, "you already have … uploads waiting; use them or wait until they expire"),
    TOO_MANY_PAYOUT_METHODS: ErrorCode(409, "you can have at most … payout methods"),
    UNAUTHORIZED: ErrorCode(401, "not signed in"),
    UNKNOWN_ENTRY_TYPE: ErrorCode(422, "unknown entry type …"),
    UNKNOWN_EXPORT: ErrorCode(None, "a data-export message for an export that does not exist or is someone else's (dead-lettered)"),
    UNKNOWN_QUERY_PARAMETER: ErrorCode(422, "this route takes no query parameters"),
    UNKNOWN_REFERRAL_CODE: ErrorCode(422, "that referral code does not exist"),
    UNKNOWN_ROLE: ErrorCode(422, "unknown role …"),
    UNKNOWN_TASK: ErrorCode(None, "no maintenance task of that name (dead-lettered)"),
    UNKNOWN_USER: ErrorCode(404, "no such user"),
    UNSUPPORTED_MEDIA_TYPE: ErrorCode(415, "the body is not application/json"),
    USER_ERASED: ErrorCode(409, "this account was erased"),
    USER_NOT_FOUND: ErrorCode(404, "no such user"),
    VALIDATION_FAILED: ErrorCode(422, "the body, query or path failed validation; details.fields says where"),
    VIDEO_NOT_FOUND: ErrorCode(404, "no such video"),
    VIDEO_SLUG_TAKEN: ErrorCode(409, "a video with this slug exists already"),
}


def render_markdown() -> str:
    """docs/errors.md: the catalogue as a table."""
    lines = [
        "# Error codes",
        "",
        "Generated from `shared/error_codes.py` by `python main.py errors-doc`; a test keeps it current.",
        'Every error answer is `{"error": {"code", "message", "details"}}` with the status below; "event" codes',
        "are dead-letter codes of Pub/Sub and storage events, never HTTP answers.",
        "",
        "| code | status | meaning |",
        "|---|---|---|",
    ]
    for code in sorted(CATALOGUE):
        status, meaning = CATALOGUE[code]
        lines.append(f"| `{code}` | {status if status is not None else 'event'} | {meaning} |")
    return "\n".join(lines) + "\n"
