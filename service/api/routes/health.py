"""Liveness: answers without authentication and without touching storage.

`async` on purpose: it runs on the event loop, not in the thread pool the other routes share,
so it answers at once even while every worker thread is busy with table reads."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.models import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness (no authentication)")
async def health() -> Health:
    return Health()
