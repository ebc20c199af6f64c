"""`totesys serve`: the HTTP API and console under uvicorn."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from service.cli.common import IngestionOpt, ProcessedOpt, app, fail, settings_from


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    ingestion: IngestionOpt = None,
    processed: ProcessedOpt = None,
) -> None:
    """Serve the HTTP API (uvicorn). Without TOTESYS_API_TOKEN only loopback addresses."""
    import uvicorn

    from service.api.app import create_app

    settings = settings_from(ingestion, processed)  # a weak token is refused here, one line
    if not settings.api_token and not is_loopback_host(host):
        fail(
            f"refusing to serve on {host} without a token: set TOTESYS_API_TOKEN, "
            "or bind a loopback address (127.0.0.1, ::1)"
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
