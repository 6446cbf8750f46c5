"""The FastAPI application behind `mnistgan serve`, and the function that runs it.

`Engine` wraps a `Sampler` and is the only code that touches the generator: grids and walks are
drawn under one lock, so a burst of concurrent requests queues instead of racing on the model.
`create_app(engine, info)` builds the routes; `serve(...)` loads the generator, binds the socket
(so a taken port is a one-line error, not a traceback) and runs uvicorn until Ctrl-C.

Every query parameter is declared with its bounds, so FastAPI validates it and documents it in
`/openapi.json`; an unknown parameter is refused too (a typo like `digits=3` would otherwise
quietly give any digit). Every error, whatever its cause, answers JSON `{"error": "one line"}`
with a 4xx status. FastAPI's `/docs` and `/redoc` pages are switched off: they load their
scripts from a CDN, and this server's pages load nothing from elsewhere; the page itself lists
the API, read from `/openapi.json`. A path with a trailing slash is a 404, not a redirect built
from the request's Host header.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mnistgan._version import __version__
from mnistgan.errors import UserError
from mnistgan.metrics.registry import present
from mnistgan.pretrained import read_bundle
from mnistgan.run import RunDir
from mnistgan.sampling import Sampler, grid_png, latent_walk, load_generator, walk_gif

LIMITS = {"n": 256, "walks": 16, "steps": 64, "seed": 2**32 - 1}
STATIC = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
# The page may load from this server only; images drawn from fetched blobs need blob:.
CSP = ("default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]

Digit = Annotated[int | None, Query(ge=0, le=9, description="Digit 0-9; leave out for any digit "
                                    "(conditional generators only).")]
Seed = Annotated[int, Query(ge=0, le=LIMITS["seed"], description="Noise seed: the same seed "
                            "and parameters give the same images.")]


class Engine:
    """The generator behind the server: PNG grids and GIF walks, one request at a time."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self._lock = threading.Lock()  # one model, many request threads

    def grid(self, digit: int | None, n: int, seed: int) -> bytes:
        """A PNG of n samples, ceil(sqrt(n)) to a row; every one `digit`, or any digit."""
        with self._lock:
            images = self.sampler.sample(n, digit, seed=seed)
        return grid_png(images, nrow=math.ceil(math.sqrt(n)))

    def walk(self, digit: int | None, seed_a: int, seed_b: int, walks: int, steps: int) -> bytes:
        """An animated GIF: `walks` slerp paths side by side, from the latents of `seed_a` to
        those of `seed_b`, in `steps` steps. A conditional generator keeps each path's digit
        (`digit`, or path i draws digit i % 10), so the style moves while the digit stays."""
        with self._lock:
            walk = latent_walk(self.sampler, walks, steps, seed=seed_a, end_seed=seed_b,
                               digit=digit)
        return walk_gif(walk)


def model_info(sampler: Sampler, source: str | Path | None) -> dict[str, Any]:
    """What the page shows beside the grid: name, config, training progress, the command that
    made it and its metrics (the bundle's metadata, or RUN/metrics.json when the run has one)."""
    meta: dict[str, Any] = {}
    if source is None:
        meta = read_bundle()[1]
        name = f"bundled {sampler.cfg.preset} generator"
    else:
        run = RunDir.of(source)
        name = run.path.name if run is not None else Path(source).name
        meta["metrics"] = (run.read_metrics() if run is not None else None) or {}
    metrics = meta.get("metrics") or {}
    real = metrics.get("real") or {}
    rows = [{"label": m.label, "value": m.show(metrics[m.key]), "note": m.note,
             "real": m.show(real.get(m.key))} for m in present(metrics)]
    return {"name": name, "source": sampler.source, "preset": sampler.cfg.preset,
            "conditional": bool(sampler.num_classes), "num_classes": sampler.num_classes,
            "z_dim": sampler.z_dim, "parameters": sum(p.numel() for p in sampler.G.parameters()),
            "progress": meta.get("progress"), "command": meta.get("command") or None,
            "metrics": rows, "metrics_n": metrics.get("n"), "config": sampler.cfg.to_dict(),
            "limits": LIMITS}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    """One line from pydantic's errors: `n=1000: Input should be less than or equal to 256`."""
    parts = []
    for e in exc.errors():
        name = str(e["loc"][-1]) if e.get("loc") else "request"
        given = f"={e['input']!r}" if isinstance(e.get("input"), str | int) else ""
        parts.append(f"{name}{given}: {e['msg']}")
    return "; ".join(parts) or "invalid request"


def _only(request: Request, *allowed: str) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "none"
        raise UserError(f"unknown parameter {unknown[0]!r}; this endpoint takes {takes}")


def _add_error_handlers(app: FastAPI) -> None:
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return _error(400, str(exc))

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log; the client gets one line, never the trace.
        return _error(500, f"internal error ({type(exc).__name__}); see the server's log")

    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def _check_host(app: FastAPI, allowed: list[str]) -> None:
    """Answer only requests whose Host header is one of `allowed` ("*": any)."""
    @app.middleware("http")
    async def host_header(request: Request, call_next):
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if "*" not in allowed and name not in allowed:
            return _error(400, f"Host {host!r} is not served here; use http://127.0.0.1")
        return await call_next(request)


def _static_files() -> dict[str, str]:
    folder = resources.files("mnistgan.serve").joinpath("static")
    return {name: folder.joinpath(name).read_text(encoding="utf-8")
            for name in ("index.html", "app.js", "style.css")}


def create_app(engine: Engine, info: dict[str, Any], *, allowed_hosts: list[str] | None = None
               ) -> FastAPI:
    """The application: the page at `/`, its files under `/static/`, the API under `/api/`.
    `allowed_hosts` (default: loopback names) are the Host headers it answers, which keeps a
    web page elsewhere from reaching a localhost server through DNS rebinding."""
    app = FastAPI(title="mnistgan serve", version=str(info.get("version", "")) or "0",
                  description="Samples from one trained MNIST generator, as PNG grids and GIF "
                              "latent walks. Errors answer JSON {\"error\": message}.",
                  docs_url=None, redoc_url=None, redirect_slashes=False)
    _add_error_handlers(app)
    _check_host(app, allowed_hosts or LOOPBACK_NAMES)
    files = _static_files()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(files["index.html"], headers=PAGE_HEADERS)

    for route, (name, mime) in STATIC.items():
        def static(name: str = name, mime: str = mime) -> Response:
            return Response(files[name], media_type=mime, headers=PAGE_HEADERS)
        app.add_api_route(route, static, methods=["GET"], include_in_schema=False)

    _add_api(app, engine, info)
    return app


def _add_api(app: FastAPI, engine: Engine, info: dict[str, Any]) -> None:
    png = {200: {"content": {"image/png": {}}, "description": "a PNG grid"}}
    gif = {200: {"content": {"image/gif": {}}, "description": "an animated GIF"}}
    errors = {400: {"description": "a request the model cannot answer: {\"error\": message}"},
              422: {"description": "an invalid parameter: {\"error\": message}"}}

    @app.get("/api/model", summary="The model: name, config, progress, command, metrics")
    def model(request: Request) -> dict[str, Any]:
        _only(request)
        return info

    @app.get("/api/sample", summary="A PNG grid of samples", response_class=Response,
             responses={**png, **errors})
    def sample(request: Request, digit: Digit = None,
               n: Annotated[int, Query(ge=1, le=LIMITS["n"], description="Number of images; "
                                       "laid out ceil(sqrt(n)) to a row.")] = 64,
               seed: Seed = 0) -> Response:
        _only(request, "digit", "n", "seed")
        name = f"mnistgan-{'any' if digit is None else digit}-n{n}-seed{seed}.png"
        return Response(engine.grid(digit, n, seed), media_type="image/png",
                        headers={"Content-Disposition": f'inline; filename="{name}"'})

    @app.get("/api/walk", summary="A latent interpolation from seed_a to seed_b, as a GIF",
             response_class=Response, responses={**gif, **errors})
    def walk(request: Request, digit: Digit = None, seed_a: Seed = 0, seed_b: Seed = 1,
             walks: Annotated[int, Query(ge=1, le=LIMITS["walks"], description="Paths side "
                                         "by side (path i is digit i % 10 without a digit).")] = 10,
             steps: Annotated[int, Query(ge=2, le=LIMITS["steps"], description="Frames from "
                                         "seed_a to seed_b; the GIF plays there and back.")] = 16,
             ) -> Response:
        _only(request, "digit", "seed_a", "seed_b", "walks", "steps")
        return Response(engine.walk(digit, seed_a, seed_b, walks, steps), media_type="image/gif")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port), or a one-line UserError."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def _is_loopback(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0].split("%")[0]).is_loopback


def serve(source: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          device: str = "cpu", log: Callable[[str], None] = print) -> None:
    """Load the generator (the bundled one when `source` is None), then serve it on host:port
    until interrupted. A host that is not loopback is said aloud: the whole network can use it."""
    # lazy: uvicorn, only when a server runs
    import uvicorn

    # A 64-image grid is a small batch: one thread does it in milliseconds, and on a busy CPU
    # more threads mostly wait on each other (6 ms against 200 ms measured on 2 shared cores).
    torch.set_num_threads(1)
    sampler = load_generator(source, device=device)
    info = {**model_info(sampler, source), "version": __version__}
    sock = _bind(host, port)
    local = _is_loopback(sock)
    app = create_app(Engine(sampler), info, allowed_hosts=None if local else ["*"])
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    log(f"serving {info['name']} ({sampler.source}) at http://{shown}:{bound_port}/ "
        "(Ctrl-C to stop)")
    if not local:
        log(f"warning: {host} is not a loopback address: anyone who can reach this machine "
            "can use the server")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the Ctrl-C
        pass
    finally:
        sock.close()
    log("stopped")
