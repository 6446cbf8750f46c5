"""`mnistgan serve`: a local web page and a JSON/PNG API over one trained generator.

This package owns the server and nothing else: `app.py` builds the FastAPI application (the
page, its two static files, `/api/model`, `/api/sample`, `/api/walk`, `/openapi.json`) around a
`Sampler`, and `serve()` binds a socket and runs it under uvicorn. `static/` holds the page
(`index.html`, `app.js`, `style.css`); they are read once at start-up, so no request ever names
a file to read, and the page loads nothing from anywhere but this server.
"""

from mnistgan.serve.app import LIMITS, Engine, create_app, model_info, serve

__all__ = ["LIMITS", "Engine", "create_app", "model_info", "serve"]
