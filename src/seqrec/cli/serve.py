"""`seqrec serve`: answer recommendation requests over HTTP (FastAPI + uvicorn, the `serve` extra)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from seqrec.cli.common import info, run_argument, settings
from seqrec.errors import SeqrecError

FACTORY = "seqrec.serving.http:app_from_env"


def register(app: typer.Typer) -> None:
    """Add `serve` to the root app."""
    app.command()(serve)


def serve(run_dir: Annotated[Path, run_argument("Run directory: a trained model, or an SAE, steered or tuned run.")],
          host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 listens on every interface.")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
          workers: Annotated[int, typer.Option(help="Worker processes; each loads the run.")] = 1,
          batching: Annotated[bool, typer.Option(
              "--batching/--no-batching", help="Score concurrent requests with the same options together.")] = True,
          threads: Annotated[int, typer.Option(help="Torch threads per worker.")] = 1) -> None:
    """Serve a run over HTTP: POST /recommend and /similar, GET /items/{id}, /health, /metadata; docs at /docs."""
    try:
        import uvicorn

        from seqrec.serving.http import RUN_ENV, ServeSettings, create_app, load_service
    except ImportError as exc:
        raise SeqrecError(f"serving needs FastAPI and uvicorn ({exc}); install them with "
                          "pip install 'seqrec[serve]'") from None
    if not 1 <= port <= 65535:
        raise SeqrecError(f"--port must be between 1 and 65535, got {port}")
    if workers < 1 or threads < 1:
        raise SeqrecError(f"--workers and --threads must be at least 1, got {workers} and {threads}")
    check_free(host, port)
    options = dataclasses.replace(ServeSettings.from_env(), batching=batching, threads=threads)
    service = load_service(run_dir, options)  # a run that cannot be served fails here, in one line
    if not is_loopback(host):
        info(f"[yellow]listening on {host}: anyone who can reach this machine can query the model[/]")
    info(f"serving {run_dir} ({service.kind}) at http://{host}:{port} — API docs at "
         f"http://{host}:{port}/docs; {workers} worker(s), batching {'on' if batching else 'off'}; Ctrl-C stops")
    log_level = "warning" if settings.quiet else "info"
    if workers == 1:
        import torch

        torch.set_num_threads(threads)
        uvicorn.run(create_app(service, options), host=host, port=port, log_level=log_level)
        return
    del service  # each worker loads its own copy
    os.environ.update({RUN_ENV: str(run_dir.resolve()), **options.to_env()})
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level)


def check_free(host: str, port: int) -> None:
    """Refuse, before loading anything, an address this machine cannot listen on or a port already in use."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SeqrecError(f"--host {host} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise SeqrecError(f"cannot listen on {host}:{port} ({exc.strerror}); the port is taken or the address "
                              "is not this machine's: pick another with --port or --host") from None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
