"""Dependencies of the routes, as `Annotated` aliases: settings, lake, pipeline, auth, dispatch.

Authentication (every route but /health)
----------------------------------------
A request is accepted when one of these holds, checked in this order:

1. **Bearer token** — `TOTESYS_API_TOKEN` is set and `Authorization: Bearer <token>` matches it
   (`hmac.compare_digest`, constant time).
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

Anything else is 401 with `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.lake import Lake
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.settings import Settings

PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_pipeline(request: Request) -> Pipeline:
    """One Pipeline (two storages, a lake, a ledger) per app: clients are reused across requests."""
    state = request.app.state
    pipeline: Pipeline | None = getattr(state, "pipeline", None)
    if pipeline is None:
        pipeline = Pipeline.from_settings(state.settings)
        state.pipeline = pipeline
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


def get_lake(pipeline: PipelineDep) -> Lake:
    # one Lake serves every request: kept table handles are brought up to date once per request
    pipeline.lake.new_session()
    return pipeline.lake


def get_ledger(pipeline: PipelineDep) -> Ledger:
    return pipeline.ledger


LakeDep = Annotated[Lake, Depends(get_lake)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


# -- dispatch ---------------------------------------------------------------------------------
Dispatcher = Callable[[dict[str, Any], Settings], None]


def get_dispatcher(request: Request) -> Dispatcher:
    """How a job leaves the request: `background.dispatch` unless a test replaced it."""
    from service.api import background

    dispatcher: Dispatcher = getattr(request.app.state, "dispatcher", None) or background.dispatch
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


# -- auth -------------------------------------------------------------------------------------
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


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def authenticate(request: Request, settings: SettingsDep, bearer: BearerDep) -> str:
    """Who the caller is (for logs): `token`, the IAM principal ARN, or `loopback`; else 401."""
    token = bearer.credentials if bearer is not None else None
    if (
        settings.api_token
        and token is not None
        and hmac.compare_digest(token.encode(), settings.api_token.encode())
    ):
        return "token"
    event = request.scope.get("aws.event")
    if event is not None:
        principal = iam_principal(event)
        if principal:
            return principal
    elif (
        not settings.api_token
        and not in_lambda()
        and request.client is not None
        and _is_loopback(request.client.host)
        and not any(h in request.headers for h in PROXY_HEADERS)
    ):
        return "loopback"
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="authentication required: a bearer token (TOTESYS_API_TOKEN) or IAM via API "
        "Gateway" + ("" if settings.api_token else "; or a loopback client when no token is set"),
        headers={"WWW-Authenticate": "Bearer"},
    )


Caller = Annotated[str, Depends(authenticate)]
