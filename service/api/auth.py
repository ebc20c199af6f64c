"""Who may call the control plane: the one place that decides (routes, docs and a console use it).

Authentication (every route but /health)
----------------------------------------
A request is accepted when one of these holds, checked in this order:

1. **Bearer token** — `TOTESYS_API_TOKEN` is set and the token the request presents
   (`Authorization: Bearer <token>`; see `presented_token`) matches it (`hmac.compare_digest`,
   constant time). A wrong token counts as a failed attempt of the client address: after 10
   within a minute every token it presents, right or wrong, is 429 for a minute
   (service/api/throttle.py).
2. **API Gateway with IAM** — the request arrived as a Lambda event (Mangum puts it in
   `scope["aws.event"]`) whose request context carries an IAM principal that API Gateway
   verified: `requestContext.authorizer.iam` (HTTP API, payload v2) or
   `requestContext.identity.userArn` + `accessKey` (REST API, payload v1). The event is built by
   API Gateway, not by the caller: headers cannot forge it. Only a principal allowed to invoke
   the function directly could write its own event, and that principal is IAM-authorised anyway.
3. **Loopback, local only** — no token is configured, the process is not running in Lambda, the
   request did not come as a Lambda event, the TCP peer is 127.0.0.0/8 or ::1, and no proxy
   header (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`) says it was relayed for someone else.
   `totesys serve` refuses to bind a non-loopback address without a token, so without a token
   only processes on this machine can reach the server. Setting a token turns this rule off.

Anything else is 401 with `WWW-Authenticate: Bearer` (or 429 while the address is throttled).

Loopback and web pages
----------------------
A web page the operator opens can make their browser send requests to 127.0.0.1, so rule 3 alone
would trust any page. Admitted as loopback, a request must also (`loopback_guard`):

- name a loopback host in `Host` (127.0.0.1 or any 127/8 address, `localhost`, `[::1]`, with any
  port): a DNS-rebinding page reaches us under its own name, so its reads are refused (403);
- for a state-changing method (anything but GET, HEAD, OPTIONS): carry no `Origin`, or a
  loopback one (403 otherwise: a page on another site), and be `Content-Type: application/json`
  (415 otherwise). A page can send a cross-site form or `text/plain` POST without a CORS
  preflight, but never a JSON one, and the server answers no preflight, so the browser stops it.

A token or IAM makes none of this necessary: a page cannot add the `Authorization` header to a
cross-site request without a preflight, and it does not know the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.throttle import record_failure, refuse_if_throttled
from service.settings import Settings

PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def iam_principal(event: Any) -> str | None:
    """The IAM principal API Gateway verified for this Lambda event, or None."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    authorizer = context.get("authorizer")
    if isinstance(authorizer, dict):
        iam = authorizer.get("iam")
        if isinstance(iam, dict) and (iam.get("userArn") or iam.get("callerId")):
            return str(iam.get("userArn") or iam.get("callerId"))
    identity = context.get("identity")
    if isinstance(identity, dict) and identity.get("userArn") and identity.get("accessKey"):
        return str(identity["userArn"])
    return None


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="TOTESYS_API_TOKEN. Deployed, API Gateway's IAM authorisation also admits a "
    "request; locally without a token, loopback clients are admitted.",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def is_loopback_address(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_name(host: str) -> bool:
    """Whether a `Host` value (or an Origin's host) names this machine: 127/8, ::1, localhost."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1] or [::1]:8000
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:  # 127.0.0.1:8000, localhost:8000
        name = name.split(":", 1)[0]
    return name == "localhost" or is_loopback_address(name)


def token_matches(settings: Settings, candidate: str) -> bool:
    """Whether `candidate` is the configured token (constant time, as bytes: any text is safe)."""
    expected = settings.api_token
    return bool(expected) and hmac.compare_digest(
        candidate.encode("utf-8", "replace"), (expected or "").encode("utf-8", "replace")
    )


def in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def presented_token(request: Request, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    """The token the request presents: the bearer credentials. (The one place to accept another
    carrier, e.g. a console's cookie; a cookie would need its own CSRF defence.)"""
    return bearer.credentials if bearer is not None else None


def _origin_is_loopback(origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in {"http", "https"} and is_loopback_name(parts.netloc)


def loopback_guard(request: Request) -> None:
    """Refuse what a web page could make a browser send to a loopback server (see the module
    docstring): a foreign Host (403), and for state-changing methods a foreign Origin (403) or a
    body that is not JSON (415)."""
    host = request.headers.get("host", "")
    if not is_loopback_name(host):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "without a token this server answers only requests addressed to a loopback name "
            "(127.0.0.1, localhost or [::1], with the port) — set TOTESYS_API_TOKEN to serve "
            "other names",
        )
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None and not _origin_is_loopback(origin):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "without a token, state-changing requests from a web page on another origin are "
            "refused",
        )
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "without a token, state-changing requests must be sent as Content-Type: "
            "application/json",
        )


async def authenticate(request: Request, bearer: BearerDep) -> str:
    """Who the caller is (for logs): `token`, the IAM principal ARN, or `loopback`; else 401
    (or 403/415 from `loopback_guard`). Async: it never blocks, so it runs on the event loop."""
    settings: Settings = request.app.state.settings
    token = presented_token(request, bearer)
    if settings.api_token and token is not None:
        refuse_if_throttled(request)  # 429 while guessing is throttled, right token or wrong
        if token_matches(settings, token):
            return "token"
        record_failure(request)
    event = request.scope.get("aws.event")
    if event is not None:
        principal = iam_principal(event)
        if principal:
            return principal
    elif (
        not settings.api_token
        and not in_lambda()
        and request.client is not None
        and is_loopback_address(request.client.host)
        and not any(h in request.headers for h in PROXY_HEADERS)
    ):
        loopback_guard(request)
        return "loopback"
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="authentication required: a bearer token (TOTESYS_API_TOKEN) or IAM via API "
        "Gateway" + ("" if settings.api_token else "; or a loopback client when no token is set"),
        headers={"WWW-Authenticate": "Bearer"},
    )


Caller = Annotated[str, Depends(authenticate)]
