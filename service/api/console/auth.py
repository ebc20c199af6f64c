"""The console's authentication (exactly the API's) and its CSRF protection.

Authentication reuses the API's rules (`auth.authenticate`): a browser cannot send an
`Authorization` header on a link or a form, so the login form checks the API token once and sets
the `totesys_console_token` cookie (HttpOnly, SameSite=Strict, Secure over https, path /console so
the API routes never see it). The cookie holds a session value, never the token: an issue time, a
random nonce and their HMAC under a key derived from the token (`session_value`), valid for
`SESSION_SECONDS`; changing the token ends every session. With no token configured the API's
loopback rule applies (loopback Host, no foreign Origin), except that a console form, which is not
JSON, proves its origin with its CSRF token instead.
A page asked for without authentication redirects to the login form; nothing is shown or done.
Wrong logins and forged session cookies count towards the API's throttle (service/api/throttle.py):
a throttled address gets 429 for every login and every page its cookie asks for.

CSRF: every state-changing button is a POST form carrying `csrf`, the HMAC of a random
`totesys_console_csrf` cookie (HttpOnly, SameSite=Strict) under the CSRF key: derived from the
token with its own label (so neither the token, the session key nor a session value is it), or,
without a token, a per-process secret. A cross-site page can neither read the cookie nor compute
the HMAC; SameSite=Strict keeps the cookies off cross-site requests anyway. That matters most in
loopback mode, where any page the operator visits could otherwise post to 127.0.0.1. Values are
compared as bytes, so a malformed (non-ASCII) field or cookie is a 403 like any other mismatch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import parse_qs, quote

from fastapi import Depends, HTTPException, Request, Response, status

from service.api.auth import SAFE_METHODS, BearerDep, authenticate
from service.api.throttle import record_failure, refuse_if_throttled
from service.settings import Settings

TOKEN_COOKIE = "totesys_console_token"
CSRF_COOKIE = "totesys_console_csrf"
COOKIE_PATH = "/console"
MAX_FORM_BYTES = 64 * 1024
SESSION_SECONDS = 12 * 3600  # a console login lasts half a day


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


def same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, compared as bytes (`hmac.compare_digest` refuses
    non-ASCII `str`)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def _derived_key(token: str, label: str) -> bytes:
    return hmac.new(token.encode("utf-8", "replace"), label.encode(), hashlib.sha256).digest()


def session_value(settings: Settings, now: float | None = None) -> str:
    """A new login cookie: `issued.nonce.mac`, the mac an HMAC under a key derived from the
    token (the token itself is never in the cookie)."""
    assert settings.api_token, "sessions exist only with a token"
    body = f"{int(time.time() if now is None else now)}.{secrets.token_urlsafe(16)}"
    key = _derived_key(settings.api_token, "totesys console session")
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"


def session_state(
    settings: Settings, value: str, now: float | None = None
) -> Literal["valid", "expired", "forged"]:
    """What a login cookie is: one this server made and still current, one it made that has
    expired, or anything else (forged, or made under another token)."""
    if not settings.api_token:
        return "forged"
    body, _, mac = value.rpartition(".")
    key = _derived_key(settings.api_token, "totesys console session")
    if not same(mac, hmac.new(key, body.encode("utf-8", "replace"), hashlib.sha256).hexdigest()):
        return "forged"
    issued = int(body.split(".", 1)[0])  # made by session_value: an integer
    age = (time.time() if now is None else now) - issued
    return "valid" if 0 <= age <= SESSION_SECONDS else "expired"


async def console_caller(request: Request, bearer: BearerDep) -> str:
    """Who the caller is, by the API's rules, with a valid login cookie standing in for the
    bearer header; else LoginRequired (429 while the address is throttled)."""
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(TOKEN_COOKIE)
    if bearer is None and cookie and settings.api_token:
        refuse_if_throttled(request)
        state = session_state(settings, cookie)
        if state == "valid":
            return "token"
        if state == "forged":
            record_failure(request)
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


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_login_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.set_cookie(
        TOKEN_COOKIE,
        session_value(settings),
        max_age=SESSION_SECONDS,
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
        return _derived_key(settings.api_token, "totesys console csrf")
    key: bytes | None = getattr(request.app.state, "console_csrf_key", None)
    if key is None:
        key = secrets.token_bytes(32)
        request.app.state.console_csrf_key = key
    return key


def _sign(request: Request, value: str) -> str:
    return hmac.new(
        _csrf_key(request), value.encode("utf-8", "replace"), hashlib.sha256
    ).hexdigest()


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
    if not cookie or not sent or not same(sent, _sign(request, cookie)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "CSRF check failed: reload the page and submit the form again",
        )
    return fields


CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
