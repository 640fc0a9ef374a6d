"""The HTTP app (FastAPI): /recommend, /similar, /items/{id}, /health, /metadata and the OpenAPI docs at /docs.

Requests are checked on the event loop (cheap) and scored in a worker thread, batched by default (see
`seqrec.serving.batching`). Every failure is a JSON answer: 422 for a body of the wrong shape or values the run
cannot take, 404 for unknown ids, 500 (logged) for a fault of the server; the server itself keeps running.
`app_from_env` is the factory uvicorn's worker processes call (`seqrec serve --workers N`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from seqrec.errors import NonFiniteError, SeqrecError, UnknownIdError
from seqrec.runs import load_recommending
from seqrec.serving.batching import Direct, MicroBatcher
from seqrec.serving.errors import RequestError
from seqrec.serving.schemas import (
    ErrorResponse,
    HealthResponse,
    ItemResponse,
    MetadataResponse,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    SimilarResponse,
)
from seqrec.serving.service import Service

log = logging.getLogger(__name__)

RUN_ENV = "SEQREC_SERVE_RUN"  # the run folder a worker process serves
SETTINGS_ENV = "SEQREC_SERVE_"  # prefix of the settings' environment variables, e.g. SEQREC_SERVE_BATCHING
MAX_BODY = 4 * 2**20  # bytes
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "Unknown user or item id"},
                                           400: {"model": ErrorResponse, "description": "The run cannot answer"}}


@dataclass
class ServeSettings:
    """How requests are scored: batched or one by one, torch threads, steered recommenders kept."""

    batching: bool = True
    window_ms: float = 0.0  # how long a batch waits for more requests (0: only while the model is busy)
    max_batch: int = 64
    threads: int = 1  # torch threads per process
    cache_size: int = 8  # steered recommenders kept (parameter sets)

    def to_env(self) -> dict[str, str]:
        return {f"{SETTINGS_ENV}{key.upper()}": str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Defaults, with any $SEQREC_SERVE_<SETTING> (e.g. SEQREC_SERVE_WINDOW_MS=2) in their place."""
        values: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            name = f"{SETTINGS_ENV}{f.name.upper()}"
            raw = os.environ.get(name)
            if raw is None:
                continue
            kind = type(getattr(defaults, f.name))
            try:
                if kind is bool and raw not in ("True", "False"):
                    raise ValueError("not True or False")
                values[f.name] = raw == "True" if kind is bool else kind(raw)
            except ValueError:
                raise SeqrecError(f"{name}={raw!r} is not a valid {kind.__name__}; set it to e.g. "
                                  f"{getattr(defaults, f.name)!r} or unset it") from None
        return cls(**values)


def load_service(path: str | Path, settings: ServeSettings | None = None) -> Service:
    """The run at `path` (any kind that recommends), ready to serve."""
    settings = settings or ServeSettings()
    return Service(load_recommending(path), path, settings.cache_size)


def app_from_env() -> FastAPI:
    """The app of one worker process: the run in $SEQREC_SERVE_RUN with the settings in $SEQREC_SERVE_*."""
    path = os.environ.get(RUN_ENV)
    if not path:
        raise SeqrecError(f"set {RUN_ENV} to the run directory to serve (or start the server with `seqrec serve RUN`)")
    settings = ServeSettings.from_env()
    torch.set_num_threads(max(1, settings.threads))
    return create_app(load_service(path, settings), settings)


def create_app(service: Service, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving `service`."""
    settings = settings or ServeSettings()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-score")
    scorer = (MicroBatcher(service.answer, executor, settings.window_ms / 1000, settings.max_batch)
              if settings.batching else Direct(service.answer, executor))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.get_running_loop().run_in_executor(executor, service.warm_up)
        except SeqrecError as exc:
            log.warning("the first recommendation failed: %s", exc)
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="seqrec", version=_version(), lifespan=lifespan, **body_limit(),
                  description=f"Recommendations from the run {service.path.name} ({service.kind}).")
    add_error_handlers(app)
    add_scoring_routes(app, service, scorer, executor)
    add_info_routes(app, service, service.metadata(batching=settings.batching))
    return app


def add_scoring_routes(app: FastAPI, service: Service, scorer: Direct | MicroBatcher,
                       executor: ThreadPoolExecutor) -> None:
    """POST /recommend (through `scorer`) and /similar (in the scoring thread)."""

    @app.post("/recommend", response_model=RecommendResponse, responses=ERRORS)
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
        """Top-k items for a user of the run's data, or for a session of item ids; optionally steered."""
        kind: Literal["user", "session"] = "user" if body.user is not None else "session"
        value = service.check_user(body.user) if body.user is not None else service.check_session(body.items or [])
        options = service.options(kind, body.k, body.mask_seen, body.allow, body.deny, body.steering)
        answer = await scorer.submit(options, value)
        return {"user": body.user, "recommendations": answer.rows, "unknown_items": answer.unknown,
                "steering": options.steering.describe() if options.steering else None, "k": body.k,
                "mask_seen": options.mask_seen}

    @app.post("/similar", response_model=SimilarResponse, responses=ERRORS)
    async def similar(body: SimilarRequest) -> dict[str, Any]:
        """The k items whose embeddings are closest to an item's."""
        service.check_item(body.item)
        allow, deny = service.known_items(body.allow, "allow"), service.known_items(body.deny, "deny")
        service.check_k(body.k, service.candidates(allow, (*(deny or ()), body.item)), filtered=bool(allow or deny))
        rows = await asyncio.get_running_loop().run_in_executor(executor, service.similar, body.item, body.k,
                                                                allow, deny)
        return {"item": body.item, "similar": rows}


def add_info_routes(app: FastAPI, service: Service, metadata: dict[str, Any]) -> None:
    """GET /items/{id}, /health and /metadata: answered on the event loop, no scoring."""

    @app.get("/items/{item_id}", response_model=ItemResponse, responses=ERRORS)
    async def item(item_id: str) -> dict[str, Any]:
        """An item's title and attributes from the run's catalogue."""
        return service.item(item_id)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        """Whether the server is up."""
        return {"status": "ok", "run": service.path.name}

    @app.get("/metadata", response_model=MetadataResponse)
    async def get_metadata() -> dict[str, Any]:
        """The served model, its data source, protocol and test metrics, and the steering on offer."""
        return metadata


def add_error_handlers(app: FastAPI) -> None:
    """Every error as JSON: {detail, field, id} (validation errors: FastAPI's {detail: [{loc, msg, type}]})."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:
            return error(415, f"send the body as JSON with the header Content-Type: application/json (this request "
                              f"says {content_type or 'nothing'})")
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(SeqrecError)
    async def refused(request: Request, exc: SeqrecError) -> JSONResponse:
        if isinstance(exc, RequestError):
            return error(exc.status, str(exc), exc.field, exc.id)
        if isinstance(exc, UnknownIdError):
            return error(404, str(exc), None, exc.ids[0] if exc.ids else None)
        if isinstance(exc, NonFiniteError):
            log.error("non-finite scores: %s", exc)
            return error(500, str(exc))
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while answering %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def body_limit() -> dict[str, int]:
    """FastAPI's request body limit, where the installed FastAPI has one (pydantic's limits apply either way)."""
    return {"max_body_size": MAX_BODY} if "max_body_size" in inspect.signature(FastAPI).parameters else {}


def error(status: int, detail: str, field: str | None = None, id: str | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field, "id": id}, status_code=status)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqrec")
    except PackageNotFoundError:
        return "unknown"
