"""The console's authentication (exactly the API's) and its CSRF protection.

Authentication reuses the API's `auth.authenticate`: a browser cannot send an `Authorization`
header on a link or a form, so the console also accepts the same token from the
`totesys_console_token` cookie that the login form sets (HttpOnly, SameSite=Strict, Secure over
https, path /console so the API routes never see it). With no token configured the API's loopback
rule applies (loopback Host, no foreign Origin), except that a console form, which is not JSON,
proves its origin with its CSRF token instead.
A page asked for without authentication redirects to the login form; nothing is shown or done.

CSRF: every state-changing button is a POST form carrying `csrf`, the HMAC of a random
`totesys_console_csrf` cookie (HttpOnly, SameSite=Strict) keyed with the API token (or, without
one, a per-process secret). A cross-site page can neither read the cookie nor compute the HMAC;
SameSite=Strict keeps the cookies off cross-site requests anyway. That matters most in loopback
mode, where any page the operator visits could otherwise post to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials

from service.api.auth import SAFE_METHODS, BearerDep, authenticate
from service.settings import Settings

TOKEN_COOKIE = "totesys_console_token"
CSRF_COOKIE = "totesys_console_csrf"
COOKIE_PATH = "/console"
MAX_FORM_BYTES = 64 * 1024


class LoginRequired(Exception):
    """Raised by the console's dependency; the app answers with a redirect to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def safe_next(value: str | None) -> str:
    """Where to go after login: a console path only (no open redirect)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def login_url(request: Request) -> str:
    """The login form, coming back to this page (a refused POST comes back to the overview:
    its URL is no page, and the action is not replayed)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in {"GET", "HEAD"}:
        target = "/console"
    return "/console/login?next=" + quote(safe_next(target), safe="")


async def console_caller(request: Request, bearer: BearerDep) -> str:
    """Who the caller is, by the API's rules, with the login cookie standing in for the bearer
    header; else LoginRequired."""
    cookie = request.cookies.get(TOKEN_COOKIE)
    if bearer is None and cookie:
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    try:
        return await authenticate(request, bearer)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            raise LoginRequired(login_url(request)) from exc
        if (
            exc.status_code == status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
            and request.method not in SAFE_METHODS
        ):
            # Loopback without a token, loopback Host and no foreign Origin (those are 403s,
            # checked first): the API asks for JSON so a web page cannot post a plain form; a
            # console form is plain, and its CSRF token (CheckedForm) is what proves it came
            # from a console page.
            return "loopback"
        raise


ConsoleCaller = Annotated[str, Depends(console_caller)]


def token_matches(settings: Settings, candidate: str) -> bool:
    return bool(settings.api_token) and hmac.compare_digest(
        candidate.encode(), (settings.api_token or "").encode()
    )


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        TOKEN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )


# -- CSRF -------------------------------------------------------------------------------------
def _csrf_key(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    if settings.api_token:
        return settings.api_token.encode()
    key: bytes | None = getattr(request.app.state, "console_csrf_key", None)
    if key is None:
        key = secrets.token_bytes(32)
        request.app.state.console_csrf_key = key
    return key


def _sign(request: Request, value: str) -> str:
    return hmac.new(_csrf_key(request), value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Csrf:
    """The form token of this page, and the cookie to set if the browser has none yet."""

    token: str
    new_cookie: str | None

    def apply(self, response: Response, request: Request) -> None:
        if self.new_cookie is not None:
            response.set_cookie(
                CSRF_COOKIE,
                self.new_cookie,
                path=COOKIE_PATH,
                httponly=True,
                samesite="strict",
                secure=is_https(request),
            )


def csrf_for(request: Request) -> Csrf:
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and 20 <= len(cookie) <= 100:
        return Csrf(_sign(request, cookie), None)
    fresh = secrets.token_urlsafe(32)
    return Csrf(_sign(request, fresh), fresh)


async def form_fields(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the console's forms), first value per name."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "form too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed form") from exc
    return {k: v[0] for k, v in parsed.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The form of a state-changing POST, after its CSRF token is verified (else 403)."""
    fields = await form_fields(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = fields.get("csrf", "")
    if not cookie or not sent or not hmac.compare_digest(sent, _sign(request, cookie)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "CSRF check failed: reload the page and submit the form again",
        )
    return fields


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
