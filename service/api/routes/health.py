"""Liveness: answers without authentication and without touching storage."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.models import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness (no authentication)")
def health() -> Health:
    return Health()
