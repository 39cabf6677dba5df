"""HTTP plumbing shared by every function: routing, auth, validation, errors, request ids, idempotency.

Each area declares ``router = Router("name")`` and routes on it; ``main.py`` hands the Flask request
to the router. Errors become the one JSON contract here and nowhere else:
``{"error": {"code", "message", "details"}}`` with a 4xx status (5xx only for our own failures).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
from pydantic import BaseModel, TypeAdapter, ValidationError
from werkzeug.exceptions import MethodNotAllowed as NoSuchMethod
from werkzeug.exceptions import NotFound as NoSuchRoute
from werkzeug.routing import Map, MapAdapter, Rule

from shared import audit, idempotency, metrics, outbox, tracing
from shared import error_codes as codes
from shared.config import get_settings
from shared.db import get_db
from shared.errors import (
    AppError,
    BadRequest,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.logs import get_logger, request_id_var, trace_var
from shared.render import dumps, error_response, json_response
from shared.sessions import STAFF_ROLES, Principal, authenticate, check_token

log = get_logger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_PARAM = re.compile(r"\{([a-z_]+)\}")  # a path parameter in a route pattern: one whole segment, never empty
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# NUL, the other C0 controls but tab, newline and carriage return, and lone surrogates: one regex
# search (C) per string rather than a Python loop over its characters.
_NOT_ALLOWED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def check_text(value: Any, where: str = "body") -> None:
    """Refuses strings PostgreSQL or our logs cannot hold safely: NUL, other C0 controls but tab/newline, lone surrogates."""
    if isinstance(value, str):
        if _NOT_ALLOWED.search(value) is not None:
            raise ValidationFailed(f"{where} contains characters that are not allowed", code=codes.INVALID_CHARACTERS)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            check_text(item, where)


def validation_details(exc: ValidationError) -> dict[str, Any]:
    return {
        "fields": [
            {"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
    }


@dataclass
class Ctx:
    """What a route handler gets: the parsed, validated request."""

    request: flask.Request
    request_id: str
    ip: str
    params: dict[str, str]
    body: Any = None
    query: Any = None
    principal: Principal | None = None
    token: str = ""  # the bearer token (routes with auth="user_inline" check it in their own statement)
    idempotency_key: str | None = None
    raw_body: bytes = b""

    @property
    def user_id(self) -> str:
        if self.principal is None:
            raise Unauthorized("sign in first", code=codes.INVALID_SESSION)
        return self.principal.user_id

    @property
    def actor(self) -> audit.Actor:
        """The signed-in staff member as the audit log records them (routes with ``auth="staff"``)."""
        if self.principal is None:
            raise Unauthorized("sign in first", code=codes.INVALID_SESSION)
        return audit.Actor(user_id=self.principal.user_id, role=self.principal.role, request_id=self.request_id)

    @property
    def user_agent(self) -> str:
        return (self.request.headers.get("User-Agent") or "")[:256]


@dataclass
class Reply:
    """A handler's answer when it needs a status or headers other than 200."""

    payload: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Ctx], Any]


@dataclass
class Route:
    method: str
    pattern: str
    handler: Handler
    auth: str | None  # None: public; "user": any signed-in account; "staff": roles below
    roles: frozenset[str]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    idempotent: bool
    summary: str
    status: int = 200  # the success status when the handler returns a plain payload
    replay_status: int | None = None  # the status a handler answers a repeated request with, if different
    response: type[BaseModel] | None = None  # the success body's model (OpenAPI; checked in tests)
    statuses: tuple[int, ...] = ()  # other statuses the handler answers with (202 with the same model; 304 without a body)
    step_up: bool = False  # a money move: staff need a second-factor code entered within MFA_STEP_UP_MINUTES

    @property
    def params(self) -> list[str]:
        """The names of the path parameters (``{name}`` in the pattern)."""
        return _PARAM.findall(self.pattern)

    def rule(self, index: int) -> Rule:
        """The werkzeug rule: ``{name}`` becomes ``<name>`` (the string converter: one non-empty segment)."""
        return Rule(_PARAM.sub(r"<\1>", self.pattern), methods=[self.method], endpoint=index)


class Router:
    """The routes of one HTTP function, and the request pipeline around them."""

    def __init__(self, function: str, *, publish_events: bool = True, console_cors: bool = False) -> None:
        """``publish_events=False`` leaves this function's outbox events to the sweep (``shared.outbox``):
        for hot paths whose latency budget is smaller than a Pub/Sub publish. ``console_cors=True``
        answers browsers on the staff console's origins (``CONSOLE_ORIGINS``) with CORS headers."""
        self.function = function
        self.publish_events = publish_events
        self.console_cors = console_cors
        self.routes: list[Route] = []
        self._urls: MapAdapter | None = None  # werkzeug's matcher for ``routes``, built on first use

    def route(
        self,
        method: str,
        pattern: str,
        *,
        auth: str | None = "user",
        roles: tuple[str, ...] = (),
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        idempotent: bool = False,
        summary: str = "",
        status: int = 200,
        replay_status: int | None = None,
        response: type[BaseModel] | None = None,
        statuses: tuple[int, ...] = (),
        step_up: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Registers a handler for ``method pattern`` (``{name}`` marks a path parameter).

        ``status`` is the success status of a plain payload (201 for creations); the OpenAPI document
        reads it, and ``replay_status`` (a status the handler itself answers with ``Reply`` for a
        repeated request), from here. ``response`` is the model of every success body (the handler may
        still return a plain dict or JSON text: in the test environment the router checks it against the
        model, so the document cannot drift from what is sent); ``statuses`` lists other statuses the
        handler answers with (202 while something is being built, 304 for a matching ETag). ``step_up``
        marks a money move (staff routes only): it needs a second-factor code entered in the last
        MFA_STEP_UP_MINUTES (POST /auth/mfa/step-up), else 403 ``step_up_required``."""
        if auth not in (None, "user", "staff", "user_inline"):
            raise ValueError(auth)
        if step_up and auth != "staff":
            raise ValueError("step_up is for staff routes")
        if auth == "user_inline" and idempotent:
            raise ValueError("a route that authenticates in its own statement cannot be idempotent")
        role_set = frozenset(roles) if roles else (STAFF_ROLES if auth == "staff" else frozenset())

        def register(fn: Handler) -> Handler:
            summary_text = summary or (fn.__doc__ or "").strip()
            self.routes.append(
                Route(
                    method,
                    pattern,
                    fn,
                    auth,
                    role_set,
                    body,
                    query,
                    idempotent,
                    summary_text,
                    status,
                    replay_status,
                    response,
                    statuses,
                    step_up,
                )
            )
            self._urls = None
            return fn

        return register

    # ------------------------------------------------------------------------------------------
    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        rid = request.headers.get("X-Request-Id", "")
        rid = rid if _REQUEST_ID.match(rid) else os.urandom(16).hex()  # as random as uuid4().hex, a third of the cost
        token = request_id_var.set(rid)
        trace = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0]
        trace_token = trace_var.set(f"projects/{get_settings().gcp_project}/traces/{trace}" if _TRACE_ID.fullmatch(trace) else None)
        traced = tracing.start_request(self.function, request.method, request.headers.get("traceparent"))
        if traced is not None and trace_var.get() is None:  # the logs of a traced request point at its trace
            trace_var.set(f"projects/{get_settings().gcp_project}/traces/{traced.trace_id}")
        status = 500
        try:
            try:
                with outbox.publishing() if self.publish_events else contextlib.nullcontext():
                    resp = self._dispatch(request, rid)
            except AppError as err:
                resp = error_response(err)
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path, extra={"event": "unhandled_error"})
                resp = error_response(InternalError())
            status = resp.status_code
            resp.headers["X-Request-Id"] = rid
            resp.headers.setdefault("Cache-Control", "no-store")
            if self.console_cors:
                console_cors_headers(request, resp)
            return resp
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            if status >= 500:
                log.error(
                    "%s %s -> %d",
                    request.method,
                    request.path,
                    status,
                    extra={"event": "http_request", "status": status, "ms": round(elapsed, 2)},
                )
            route = request.environ.get("earnpay.route", "unmatched")
            metrics.request_finished(self.function, route, status, elapsed)
            if traced is not None:
                tracing.end_request(traced, self.function, request.method, route, status)
            request_id_var.reset(token)
            trace_var.reset(trace_token)

    def urls(self) -> MapAdapter:
        """werkzeug's routing over this router's routes. "/x" and "/x/" are one route, answered directly:
        no redirect ever (Pub/Sub push does not follow redirects), hence strict_slashes, merge_slashes and
        redirect_defaults all off."""
        if self._urls is None:
            rules = [route.rule(i) for i, route in enumerate(self.routes)]
            self._urls = Map(rules, strict_slashes=False, merge_slashes=False, redirect_defaults=False).bind("")
        return self._urls

    def allowed(self, path: str) -> list[str]:
        """The methods the routes at ``path`` declare (werkzeug adds HEAD to GET rules: not listed unless declared)."""
        if "//" in path:  # werkzeug reads "//x" as "/x"; no route has an empty segment
            return []
        declared = {route.method for route in self.routes}
        return sorted(set(self.urls().allowed_methods(path or "/")) & declared)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a method and path (404 or 405 with Allow when none)."""
        path = path or "/"
        try:
            if "//" in path:
                raise NoSuchRoute()
            index, params = self.urls().match(path, method=method)
            if self.routes[index].method != method:  # werkzeug's automatic HEAD on a GET rule: not declared here
                raise NoSuchMethod()
        except NoSuchMethod:
            allowed = self.allowed(path)
            err = MethodNotAllowed(f"{method} is not allowed here", details={"allowed": allowed})
            err.headers["Allow"] = ", ".join(allowed)
            raise err from None
        except NoSuchRoute:
            raise NotFound(f"no route {method} /{self.function}{path}", code=codes.ROUTE_NOT_FOUND) from None
        return self.routes[index], dict(params)

    def _dispatch(self, request: flask.Request, rid: str) -> flask.Response:
        settings = get_settings()
        method = request.method.upper()
        path = request.path
        if method == "OPTIONS":
            allowed = self.allowed(path)
            if not allowed:
                raise NotFound(f"no route /{self.function}{path}", code=codes.ROUTE_NOT_FOUND)
            return flask.Response(status=204, headers={"Allow": ", ".join([*allowed, "OPTIONS"])})
        # Order: the route (404/405), then who is calling (401), then may they (403), and only then
        # what they sent (path, query, body: 400/413/415/422): a caller learns nothing about a
        # route's schema before being allowed to use it.
        route, params = self.match("GET" if method == "HEAD" else method, path)
        request.environ["earnpay.route"] = f"{route.method} {route.pattern}"  # the metrics' route attribute (no ids in it)
        ctx = Ctx(request=request, request_id=rid, ip=client_ip(request), params=params)

        if route.auth is not None:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("send Authorization: Bearer <session token>", code=codes.MISSING_SESSION)
            ctx.token = token.strip()
            if route.auth == "user_inline":
                # The handler checks the session in its own statement (one round trip for both);
                # nothing below may answer before that check but a validation error, which then
                # authenticates first (below), so 401/403/429 still come before 4xx about the input.
                check_token(ctx.token)
            else:
                with get_db().connection() as conn:
                    ctx.principal = authenticate(conn, ctx.token, settings)
                if route.auth == "staff" and ctx.principal.role not in route.roles:
                    raise Forbidden("your role may not do this", code=codes.ROLE_FORBIDDEN, details={"required_roles": sorted(route.roles)})
                if route.auth == "staff" and not ctx.principal.mfa:
                    # A staff session without the second factor (a user promoted to staff, not yet enrolled):
                    # no staff route answers until the holder enrols (POST /auth/mfa/enrol, then /confirm).
                    raise Forbidden(
                        "staff accounts need two-factor authentication: enrol (POST /auth/mfa/enrol) or sign in with your code",
                        code=codes.MFA_REQUIRED,
                    )
                if route.step_up and not ctx.principal.stepped_up:
                    raise Forbidden(
                        "this moves money: enter a two-factor code first (POST /auth/mfa/step-up)",
                        code=codes.STEP_UP_REQUIRED,
                        details={"within_minutes": settings.mfa_step_up_minutes},
                    )

        try:
            raw = self._validate(request, route, ctx, method, params)
        except AppError:
            if route.auth == "user_inline":
                with get_db().connection() as conn:
                    ctx.principal = authenticate(conn, ctx.token, settings)
            raise

        key = request.headers.get("Idempotency-Key")
        if route.idempotent and key is not None and ctx.principal is not None:
            if not _IDEMPOTENCY_KEY.match(key):
                raise ValidationFailed("Idempotency-Key must be 1-128 printable ASCII characters", code=codes.INVALID_IDEMPOTENCY_KEY)
            ctx.idempotency_key = key
            fingerprint = hashlib.sha256(f"{method} {self.function}{path}\n".encode() + raw).digest()
            return idempotency.run(ctx.principal.user_id, key, fingerprint, lambda: self._invoke(route, ctx))
        return self._invoke(route, ctx)

    @staticmethod
    def _validate(request: flask.Request, route: Route, ctx: Ctx, method: str, params: dict[str, str]) -> bytes:
        """Path, query and body checks (400/413/415/422); the parsed values go into ``ctx``."""
        check_text(params, "path")
        raw = b""
        if method in ("POST", "PUT", "PATCH"):
            raw = read_body(request, get_settings().max_body_bytes)
        ctx.raw_body = raw
        if route.query is not None:
            ctx.query = parse_query(request, route.query)
        elif request.args:
            raise ValidationFailed(
                "this route takes no query parameters",
                code=codes.UNKNOWN_QUERY_PARAMETER,
                details={"parameters": sorted(request.args.keys())},
            )
        if route.body is not None:
            ctx.body = parse_body(raw, route.body, request)
        return raw

    @staticmethod
    def _invoke(route: Route, ctx: Ctx) -> flask.Response:
        result = route.handler(ctx)
        if isinstance(result, flask.Response):
            resp = result
        elif isinstance(result, Reply):
            resp = json_response(result.payload, result.status, result.headers)
        else:
            resp = json_response(result, route.status)
        if route.response is not None and 200 <= resp.status_code < 300 and resp.status_code != 204 and get_settings().env == "test":
            check_response(route, resp)
        return resp


CORS_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
CORS_EXPOSED_HEADERS = "X-Request-Id, Idempotent-Replayed, Retry-After"


def console_cors_headers(request: flask.Request, resp: flask.Response) -> None:
    """CORS for the staff console: only an origin listed in ``CONSOLE_ORIGINS`` is answered (exactly
    that origin, never ``*``, no credentials: the token travels in the Authorization header)."""
    resp.headers.add("Vary", "Origin")
    origin = request.headers.get("Origin", "")
    if not origin or origin not in get_settings().console_origin_set:
        return
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    if request.method == "OPTIONS" and resp.status_code == 204:
        allowed = resp.headers.get("Allow", "")
        resp.headers["Access-Control-Allow-Methods"] = allowed
        resp.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
        resp.headers["Access-Control-Max-Age"] = "600"


def check_response(route: Route, resp: flask.Response) -> None:
    """Holds a success body to the route's response model (and the one JSON style); a mismatch is our bug (500).

    Only in the test environment (``EARNPAY_ENV=test``): the whole test suite thereby checks that
    docs/openapi.json describes every body actually sent, at no cost to production requests, nor to
    the local server the benchmarks measure (validating a 10,000-entry export costs ~250 ms).
    """
    assert route.response is not None
    text = resp.get_data(as_text=True)
    if resp.status_code not in (route.status, route.replay_status, *route.statuses):
        raise RuntimeError(f"{route.method} {route.pattern} answered {resp.status_code}, which its route does not declare")
    _response_adapter(route.response).validate_json(text, strict=False)
    if dumps(json.loads(text)) != text:
        raise RuntimeError(f"{route.method} {route.pattern} answered JSON that is not in the compact style")


_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def _response_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def client_ip(request: flask.Request) -> str:
    """The caller's address, as the proxies we trust saw it (``TRUSTED_PROXY_HOPS``, docs/deploy.md).

    Each trusted proxy appends the address it received the request from to ``X-Forwarded-For``.
    With N trusted hops the caller is the N-th entry from the right: entries further left were
    written by the client itself (or by proxies we do not run) and are ignored, so a spoofed header
    changes nothing. 0 hops (local runs): the peer address. A header shorter than N entries, or an
    entry that is not an IP address, falls back to the peer address (never to a client-written value).
    """
    peer = request.remote_addr or "0.0.0.0"  # noqa: S104  # an unknown peer, not a bind address
    hops = get_settings().trusted_proxy_hops
    if hops <= 0:
        return peer
    entries = [e.strip() for e in ",".join(request.headers.getlist("X-Forwarded-For")).split(",") if e.strip()]
    if len(entries) < hops:
        return peer
    candidate = entries[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes without reading it all."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", details={"limit_bytes": limit})
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", details={"limit_bytes": limit})
    return bytes(data)


# Hostile JSON: our bodies are a few levels deep and hold no number wider than a bigint, so anything
# beyond these limits is refused as a 400 before (depth) or while (keys, numbers) it is parsed.
MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 40
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


class _HostileJson(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, found without parsing (so without recursion).

    Up to MAX_JSON_DEPTH it may answer the number of opening brackets instead (an upper bound): the
    common case then costs two C-level counts and no scan."""
    openings = raw.count(b"[") + raw.count(b"{")
    if openings <= MAX_JSON_DEPTH:
        return openings
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise _HostileJson("duplicate_key", f"the key {dup[:64]!r} appears more than once in one object")
    return obj


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _HostileJson("number_out_of_range", "a number in the body is too large")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else float("inf")
    if value in (float("inf"), float("-inf")):
        raise _HostileJson("number_out_of_range", "a number in the body is too large")
    return value


def _constant(text: str) -> Any:
    raise _HostileJson("malformed_json", f"{text} is not JSON")


def load_json(raw: bytes) -> Any:
    """Parses a request body: 400 for malformed JSON, nesting deeper than MAX_JSON_DEPTH, duplicate keys,
    numbers beyond MAX_NUMBER_CHARS characters or a float's range, NaN and Infinity."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(
            f"the body nests deeper than {MAX_JSON_DEPTH} levels", code=codes.JSON_TOO_DEEP, details={"max_depth": MAX_JSON_DEPTH}
        )
    try:
        return json.loads(raw, object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _HostileJson as exc:
        raise BadRequest(str(exc), code=exc.code) from exc
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest("the body is not valid JSON", code=codes.MALFORMED_JSON) from exc


def parse_body(raw: bytes, model: type[BaseModel], request: flask.Request) -> BaseModel:
    """Validates a JSON object body against ``model`` (415 for non-JSON, 400 malformed, 422 invalid)."""
    ctype = (request.mimetype or "").lower()
    if raw.strip() and ctype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    data = load_json(raw or b"{}")
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object", code=codes.BODY_NOT_OBJECT)
    check_text(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the body is invalid", details=validation_details(exc)) from exc


def parse_query(request: flask.Request, model: type[BaseModel]) -> BaseModel:
    """Validates the query string against ``model`` (repeated parameters are refused)."""
    data: dict[str, str] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) != 1:
            raise ValidationFailed(f"query parameter {key!r} given more than once", code=codes.REPEATED_QUERY_PARAMETER)
        data[key] = values[0]
    check_text(data, "query")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the query parameters are invalid", details=validation_details(exc)) from exc
