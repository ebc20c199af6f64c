"""Guessing the token: malformed CSRF values, the throttle (a real `totesys serve` taking a burst
of 200 guesses, and the minute passing on a test clock), weak tokens, and the console's cookies
(a session value and a CSRF key derived from the token, never the token itself)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.api.app import create_app
from service.api.console import auth as console_auth
from service.api.throttle import LIMIT, WINDOW_SECONDS, Throttle
from service.settings import Settings
from tests.api.conftest import TOKEN
from tests.api.test_serve import free_port
from tests.console.test_console_http import csrf_of, log_in

ROOT = Path(__file__).resolve().parents[2]
BURST = 200


# -- 1. a malformed CSRF value is a 403 ----------------------------------------------------------
@pytest.mark.parametrize("path", ["/console/login", "/console/logout"])
@pytest.mark.parametrize(
    ("csrf_field", "csrf_cookie"),
    [
        ("%C3%A9", None),  # the reproducer: é in the form, the browser's own cookie
        ("%C3%A9", "é"),
        (None, "é" * 30),  # a valid form token, a non-ASCII cookie (UTF-8 bytes on the wire)
        ("%FF%FE", None),
        ("%00", None),
    ],
)
def test_a_malformed_csrf_value_is_403_never_500(
    app: FastAPI, path: str, csrf_field: str | None, csrf_cookie: str | None
) -> None:
    with TestClient(app, follow_redirects=False) as c:
        valid = csrf_of(c.get("/console/login").text)  # sets the browser's CSRF cookie
        field = csrf_field if csrf_field is not None else valid
        headers: dict[str, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
        if csrf_cookie is not None:
            c.cookies.clear()
            headers["Cookie"] = f"totesys_console_csrf={csrf_cookie}".encode()
        answer = c.post(path, content=f"csrf={field}&token={TOKEN}", headers=headers)
        assert answer.status_code == 403, answer.text
        assert "CSRF check failed" in answer.text


# -- 2. the throttle ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`totesys serve` with a token (a real uvicorn), its stderr in a file."""
    root = tmp_path_factory.mktemp("guessing")
    (root / "ingestion").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOTESYS_", "AWS_LAMBDA"))}
    env |= {"PYTHONPATH": str(ROOT), "TOTESYS_API_TOKEN": TOKEN}
    log = root / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "service.cli", "serve", "--port", str(port)),
                *("--ingestion", str(root / "ingestion"), "--processed", str(root / "processed")),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not answer /health in 120 s"
            time.sleep(0.1)
        yield base, log
    finally:
        process.terminate()
        process.wait(10)


def _from(address: str, base: str) -> httpx.Client:
    """A client whose requests come from `address` (any 127/8 address reaches the server)."""
    return httpx.Client(
        base_url=base, transport=httpx.HTTPTransport(local_address=address), timeout=10
    )


def _throttle_warnings(log: Path, address: str) -> list[str]:
    return [
        line
        for line in log.read_text().splitlines()
        if line.startswith("WARNING") and f"throttling {address}:" in line
    ]


def test_a_burst_of_wrong_bearer_tokens_is_throttled(served: tuple[str, Path]) -> None:
    base, log = served
    with _from("127.0.0.2", base) as c:
        started = time.perf_counter()
        codes = [
            c.get("/runs", headers={"Authorization": f"Bearer guess-{i:04d}"}) for i in range(BURST)
        ]
        seconds = time.perf_counter() - started
        assert [r.status_code for r in codes] == [401] * LIMIT + [429] * (BURST - LIMIT)
        for r in codes[LIMIT:]:
            assert 1 <= int(r.headers["retry-after"]) <= WINDOW_SECONDS
            assert "too many failed authentication attempts" in r.json()["detail"]
        # Right or wrong, the address waits: a 429 says nothing about the token.
        right = c.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 429 and "retry-after" in right.headers
        csrf = csrf_of(c.get("/console/login").text)
        login = c.post("/console/login", data={"csrf": csrf, "token": TOKEN})
        assert login.status_code == 429 and "retry-after" in login.headers
        assert "too many failed authentication attempts" in login.text
        # A request that presents no credential guesses nothing: still the plain 401.
        assert c.get("/runs").status_code == 401
        assert c.get("/health").status_code == 200
    # Another address is not affected.
    with _from("127.0.0.3", base) as other:
        assert other.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    time.sleep(0.5)  # the log line is written by the server process
    warnings = _throttle_warnings(log, "127.0.0.2")
    assert len(warnings) == 1, log.read_text()[-3000:]
    print(f"\n{BURST} wrong bearer tokens: {seconds:.2f} s")


def test_a_burst_of_wrong_console_logins_is_throttled(served: tuple[str, Path]) -> None:
    base, log = served
    with _from("127.0.0.4", base) as c:
        csrf = csrf_of(c.get("/console/login").text)
        started = time.perf_counter()
        codes = [
            c.post("/console/login", data={"csrf": csrf, "token": f"guess-{i:04d}"}).status_code
            for i in range(BURST)
        ]
        seconds = time.perf_counter() - started
        assert codes == [401] * LIMIT + [429] * (BURST - LIMIT)
        assert c.post("/console/login", data={"csrf": csrf, "token": TOKEN}).status_code == 429
        bearer = c.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 429
    time.sleep(0.5)
    assert len(_throttle_warnings(log, "127.0.0.4")) == 1, log.read_text()[-3000:]
    print(f"\n{BURST} wrong console logins: {seconds:.2f} s")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_lasts_a_minute_then_forgets(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    app.state.throttle = Throttle(clock=clock)
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    with caplog.at_level(logging.WARNING, "totesys.api.throttle"), TestClient(app) as c:
        # Failures spread over more than a minute never add up to a throttle.
        for _ in range(LIMIT - 1):
            assert c.get("/runs", headers=wrong).status_code == 401
        clock.now += WINDOW_SECONDS + 1
        for _ in range(LIMIT - 1):
            assert c.get("/runs", headers=wrong).status_code == 401
        assert c.get("/runs", headers=right).status_code == 200
        clock.now += WINDOW_SECONDS + 1
        for _ in range(LIMIT):
            assert c.get("/runs", headers=wrong).status_code == 401
        first = c.get("/runs", headers=right)
        assert first.status_code == 429 and first.headers["retry-after"] == "60"
        clock.now += WINDOW_SECONDS - 0.5
        late = c.get("/runs", headers=right)
        assert late.status_code == 429 and late.headers["retry-after"] == "1"
        for _ in range(50):  # attempts while throttled neither extend it nor log again
            assert c.get("/runs", headers=wrong).status_code == 429
        clock.now += 0.5
        assert c.get("/runs", headers=right).status_code == 200
        assert c.get("/runs", headers=wrong).status_code == 401  # a clean slate
    warnings = [r for r in caplog.records if r.name == "totesys.api.throttle"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "testclient" in warnings[0].getMessage()


def test_a_forged_console_cookie_counts_as_a_guess(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as c:
        for i in range(LIMIT):
            c.cookies.set("totesys_console_token", f"1.nonce.{i:064x}", path="/console")
            assert c.get("/console").status_code == 303  # to the login form
        assert c.get("/console").status_code == 429
        assert c.get("/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429


def test_the_throttle_state_stays_bounded() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    for i in range(12_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
        clock.now += 0.01
    assert len(throttle) <= 10_000


# -- 3. a weak token is refused -------------------------------------------------------------------
def test_settings_refuse_a_token_shorter_than_24_characters() -> None:
    with pytest.raises(ValidationError, match="too short") as info:
        Settings(api_token="hunter2")
    assert "hunter2" not in str(info.value.errors()[0]["msg"])  # a secret, if a weak one
    assert "secrets.token_urlsafe(32)" in str(info.value)
    assert Settings(api_token="x" * 24).api_token == "x" * 24
    assert Settings(api_token=None).api_token is None


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serve_refuses_a_weak_token_in_one_line(host: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTESYS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--host", host, "--port", "1"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "TOTESYS_API_TOKEN": "secret"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: invalid setting: TOTESYS_API_TOKEN: ")
    assert "at least 24" in lines[0]
    assert 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"' in lines[0]


# -- 4. the console's cookies hold no token -------------------------------------------------------
def test_the_login_cookie_is_a_session_value_not_the_token(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as c:
        log_in(c)
        value = c.cookies["totesys_console_token"]
        assert TOKEN not in value
        issued, nonce, mac = value.split(".")
        assert int(issued) <= time.time() and len(nonce) >= 16 and re.fullmatch("[0-9a-f]{64}", mac)
        assert c.get("/console").status_code == 200
        # The cookie is no bearer token, and the token is no cookie.
        assert c.get("/runs", headers={"Authorization": f"Bearer {value}"}).status_code == 401
        c.cookies.set("totesys_console_token", TOKEN, path="/console")
        assert c.get("/console").status_code == 303


def test_a_session_ends_with_its_lifetime_or_a_new_token(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    value = console_auth.session_value(settings)
    assert console_auth.session_state(settings, value) == "valid"
    later = time.time() + console_auth.SESSION_SECONDS + 1
    assert console_auth.session_state(settings, value, now=later) == "expired"
    rotated = settings.model_copy(update={"api_token": "a-new-token-0123456789-abcdef"})
    assert console_auth.session_state(rotated, value) == "forged"
    with TestClient(app, follow_redirects=False) as c:
        c.cookies.set("totesys_console_token", value, path="/console")
        assert c.get("/console").status_code == 200
        old = console_auth.session_value(
            settings, now=time.time() - console_auth.SESSION_SECONDS - 5
        )
        c.cookies.set("totesys_console_token", old, path="/console")
        assert c.get("/console").status_code == 303


def test_the_csrf_key_is_not_the_token(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as c:
        log_in(c)
        cookie = c.cookies["totesys_console_csrf"]
        keyed_with_token = hmac.new(TOKEN.encode(), cookie.encode(), hashlib.sha256).hexdigest()
        answer = c.post("/console/runs", data={"csrf": keyed_with_token})
        assert answer.status_code == 403
        assert csrf_of(c.get("/console").text) != keyed_with_token


def test_a_token_of_another_server_makes_no_session(tmp_path: Path) -> None:
    other = Settings(
        ingestion_uri=str(tmp_path), processed_uri=str(tmp_path / "p"), api_token="z" * 30
    )
    with TestClient(create_app(other), follow_redirects=False) as c:
        c.cookies.set(
            "totesys_console_token",
            console_auth.session_value(other.model_copy(update={"api_token": TOKEN})),
            path="/console",
        )
        assert c.get("/console").status_code == 303
