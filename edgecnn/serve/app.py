"""The HTTP routes of the Open Inference Protocol (KServe v2) over served models, as a Starlette app.

Why Starlette + uvicorn: the smallest ASGI pair that does the job (Starlette brings only anyio; no pydantic,
no ORM), async so one process holds many connections while requests wait for their batch, and uvicorn is
the reference ASGI server with the graceful shutdown SIGTERM needs. FastAPI would add pydantic and its start-up
for a schema we validate ourselves (protocol.py); aiohttp would be a second HTTP stack beside tritonclient's.

Routes: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server metadata), ``POST
/v2/repository/index``, ``GET /v2/models/{name}[/versions/1]`` (metadata), ``.../ready``, ``POST .../infer``,
``POST .../classify`` (images → top-k labels), ``GET /metrics``. Every failure is ``{"error": "one line"}``
with its status: 400 a malformed request, 401 no token, 404 no such model or route, 413 past a limit, 415 an
unknown Content-Encoding, 500 the model failed on this request (the server goes on), 503 the queue is full
(with ``Retry-After``) or the server is not ready.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecnn import __version__
from edgecnn.config import ServeConfig
from edgecnn.errors import ConfigError, EdgeCNNError, InputError
from edgecnn.serve.bodies import classify_options, header_length, read_body, read_uploads
from edgecnn.serve.gate import FAULT, LOG_NOTE, Gate, error_body
from edgecnn.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from edgecnn.serve.models import MODEL_VERSION, OUTPUTS, ServedModel
from edgecnn.serve.protocol import ProtocolError, decode_infer_request, encode_infer_response

__all__ = ["create_app", "EXTENSIONS"]

EXTENSIONS = ["binary_tensor_data", "classification"]  # what /v2 says this server speaks beyond the core
_OFF_LOOP_BYTES = 1 << 16  # bodies larger than this are parsed in a worker thread, not on the event loop
# Uploads of up to this many pixels in all are decoded on the event loop (a small PNG decodes faster than a
# handoff to a thread and back: BENCHMARKS.md, "Serving: what runs on the event loop"); larger ones in the
# decoder thread, so a photo never holds the loop.
INLINE_PIXELS = 256 * 256
Handler = Callable[[Request], Awaitable[Response]]
DISCONNECTED = 499  # nginx's status for a client that closed the connection before its answer: logged, never sent


class _JSON(JSONResponse):
    """JSON in ASCII: a client's text echoed back (a file name, an id) may hold what UTF-8 cannot encode."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


class _Service:
    def __init__(self, models: Sequence[ServedModel], config: ServeConfig) -> None:
        self.models = {model.name: model for model in models}
        self.config = config
        self.ready = False
        # one thread decodes large uploads: decoding and framing hold the GIL much of the time, so more threads only
        # fight for it (the default executor's did: BENCHMARKS.md, "Serving: what runs on the event loop")
        self.decoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgecnn-decode")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for model in self.models.values():
            model.batcher.start()
        self.ready = True
        try:
            yield
        finally:  # the connections are drained: answer anything still queued (until the drain's deadline), then stop
            self.ready = False
            for model in self.models.values():
                await model.batcher.stop(app.state.gate.deadline)
            self.decoder.shutdown()

    def model(self, request: Request) -> ServedModel:
        name, version = request.path_params["name"], request.path_params.get("version", MODEL_VERSION)
        if name not in self.models:
            raise ProtocolError(f"no model named {name!r}; this server has {', '.join(self.models)}", 404)
        if version != MODEL_VERSION:
            raise ProtocolError(f"model {name} has version {MODEL_VERSION} only (asked for {version!r})", 404)
        return self.models[name]

    async def live(self, _request: Request) -> Response:
        return _JSON({"live": True})

    async def health_ready(self, _request: Request) -> Response:
        return _JSON({"ready": self.ready}, status_code=200 if self.ready else 503)

    async def server_metadata(self, _request: Request) -> Response:
        return _JSON({"name": "edgecnn", "version": __version__, "extensions": EXTENSIONS})

    async def repository_index(self, _request: Request) -> Response:
        state = "READY" if self.ready else "UNAVAILABLE"
        return _JSON([{"name": name, "version": MODEL_VERSION, "state": state} for name in self.models])

    async def model_metadata(self, request: Request) -> Response:
        return _JSON(self.model(request).metadata())

    async def model_ready(self, request: Request) -> Response:
        self.model(request)
        return _JSON({"name": request.path_params["name"], "ready": self.ready}, 200 if self.ready else 503)

    async def infer(self, request: Request) -> Response:
        model = self.model(request)
        with model.batcher.arriving():
            body = await self._body(request)
            length = header_length(request)
            decode = functools.partial(decode_infer_request, body, length, max_elements=model.max_elements)
            parsed = await asyncio.to_thread(decode) if len(body) > _OFF_LOOP_BYTES else decode()
            x = model.graph_input(parsed.inputs)
        names = [output.name for output in parsed.outputs] or list(OUTPUTS)
        outputs = await model.infer(x, names)
        # binary_data_output makes every output binary; an output's own binary_data makes that one binary
        binary = set(names) if parsed.binary_output else {o.name for o in parsed.outputs if o.binary}
        content, json_length = encode_infer_response(
            model.name, outputs, binary, request_id=parsed.id, model_version=MODEL_VERSION
        )
        if json_length is None:
            return Response(content, media_type="application/json")
        headers = {"Inference-Header-Content-Length": str(json_length)}
        return Response(content, media_type="application/octet-stream", headers=headers)

    async def classify(self, request: Request) -> Response:
        model = self.model(request)
        with model.batcher.arriving():
            body = await self._body(request)
            uploads, fields = await read_uploads(request, body, model.max_images)
            options = classify_options(request.query_params, fields, len(model.predictor.classes))
            opened = model.open_uploads(uploads)
            prepare = functools.partial(model.prepare_uploads, opened, fit=options["fit"], invert=options["invert"])
            if sum(image.width * image.height for _, image in opened) <= INLINE_PIXELS:
                x = prepare()
            else:
                x = await asyncio.get_running_loop().run_in_executor(self.decoder, prepare)
        predictions = await model.classify(x, options["top_k"])
        return _JSON(
            {
                "model_name": model.name,
                "model_version": MODEL_VERSION,
                "predictions": [{"image": u.name, **p.to_dict()} for u, p in zip(uploads, predictions, strict=True)],
            }
        )

    async def metrics(self, request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def _body(self, request: Request) -> bytes:
        body = await read_body(request, self.config.max_body_bytes)
        request.scope[LOG_NOTE]["bytes_in"] = len(body)
        return body


def _answering_errors(handler: Handler) -> Handler:
    """A handler whose expected failures become the protocol's one-line JSON error with their status."""

    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except EdgeCNNError as exc:
            status = _status(exc)
            message = str(exc) if status != 500 else f"the model failed on this request: {exc}"
            request.scope[LOG_NOTE]["error"] = message
            headers = {"Retry-After": "1"} if status == 503 else None
            return _JSON({"error": message}, status_code=status, headers=headers)
        except ClientDisconnect:  # nothing to answer: the access log's line says it
            request.scope[LOG_NOTE]["error"] = "the client disconnected before its request was read"
            return Response(status_code=DISCONNECTED)

    return answer


def _status(exc: EdgeCNNError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status  # ProtocolError, QueueFull
    return 400 if isinstance(exc, (InputError, ConfigError)) else 500


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), in the protocol's error form; anything else
    is a fault of the server's (the Gate logs it in one line)."""
    if not isinstance(exc, HTTPException):
        return Response(error_body(FAULT), 500, media_type="application/json")
    status = exc.status_code
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    request.scope[LOG_NOTE]["error"] = text = message.get(status, str(exc))
    return _JSON({"error": text}, status_code=status)


def create_app(models: Sequence[ServedModel], config: ServeConfig, *, metrics: Metrics, token: str | None) -> Gate:
    """The ASGI app: the routes behind the :class:`~edgecnn.serve.gate.Gate` (token, access log, metrics)."""
    service = _Service(models, config)
    metrics.models = service.models
    model_routes = {"": service.model_metadata, "/ready": service.model_ready}
    post_routes = {"/infer": service.infer, "/classify": service.classify}
    routes = [
        Route("/v2/health/live", _answering_errors(service.live)),
        Route("/v2/health/ready", _answering_errors(service.health_ready)),
        Route("/v2", _answering_errors(service.server_metadata)),
        Route("/v2/repository/index", _answering_errors(service.repository_index), methods=["POST"]),
        Route("/metrics", _answering_errors(service.metrics)),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(base + tail, _answering_errors(handler)) for tail, handler in model_routes.items()]
        routes += [
            Route(base + tail, _answering_errors(handler), methods=["POST"]) for tail, handler in post_routes.items()
        ]
    handlers = {HTTPException: _http_error, Exception: _http_error}
    app = Starlette(routes=routes, lifespan=service.lifespan, exception_handlers=handlers)
    app.state.metrics = metrics
    app.state.gate = gate = Gate(app, metrics=metrics, models=service.models, token=token)
    return gate
