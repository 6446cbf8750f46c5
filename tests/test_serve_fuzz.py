"""`mnistgan serve` under abuse: property-based fuzzing (hypothesis) of every query parameter
and of malformed requests (long, repeated, non-UTF-8, unknown names, odd paths and hosts),
sent straight to the ASGI application with raw bytes, plus the same through uvicorn over a
socket. Whatever comes in, the answer is never a 5xx and never a traceback: a 2xx image or
JSON, or a 4xx whose body is JSON `{"error": one line}`."""

from __future__ import annotations

import asyncio
import json
import socket
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import conftest
from mnistgan.sampling import load_generator
from mnistgan.serve import LIMITS, Engine, create_app, model_info

ENDPOINTS = {"/api/sample": ("digit", "n", "seed"),
             "/api/walk": ("digit", "seed_a", "seed_b", "walks", "steps"),
             "/api/model": ()}
KINDS = {"image/png", "image/gif", "application/json", "text/html; charset=utf-8",
         "text/javascript; charset=utf-8", "text/css; charset=utf-8"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    run = conftest.tiny_cdcgan_run(tmp_path_factory)
    sampler = load_generator(run)
    return create_app(Engine(sampler), model_info(sampler, run))


def asgi_get(app, path: bytes, query: bytes = b"", headers=None) -> tuple[int, str, bytes]:
    """One GET through the ASGI interface with raw bytes, as a server would pass it on:
    (status, content type, body). An exception escaping the app fails the test."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path.decode("latin-1"), "raw_path": path,
             "query_string": query, "root_path": "", "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 8000),
             "headers": headers if headers is not None else [(b"host", b"127.0.0.1:8000")]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    head = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], head.get("content-type", ""), body


def check_answer(status: int, kind: str, body: bytes) -> None:
    """The promise: never a 5xx, never a traceback, errors one JSON line."""
    assert status < 500, body[:300]
    assert b"Traceback" not in body and kind in KINDS, (status, kind)
    if status >= 400:
        assert kind == "application/json"
        message = json.loads(body)["error"]
        assert isinstance(message, str) and message and "\n" not in message


# -- values: what a fuzzer, a typo or an attacker puts in a query ------------------------------

numbers = st.one_of(st.integers(-3, 300), st.integers(-(2**70), 2**70),
                    st.sampled_from([LIMITS["seed"], LIMITS["seed"] + 1, 2**63, -(2**63)]))
texts = st.one_of(
    numbers.map(lambda v: str(v).encode()),
    st.sampled_from([b"", b"1.5", b"1e3", b"0x10", b" 3", b"3 ", b"+4", b"-0", b"nan", b"inf",
                     b"\xff\xfe", b"%ff", b"%00", b"%", b"%%", b"\x00", b"1" * 5000, b"[]",
                     b"{}", b"null", b"true", b"\xe2\x82", b"%e2%82"]),
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
names = st.one_of(st.sampled_from(sorted({p for ps in ENDPOINTS.values() for p in ps})),
                  st.sampled_from([b"", b"N", b"digits", b"n[]", b"seed%00", b"\xff", b"path"]),
                  st.binary(max_size=12))


def to_bytes(name: str | bytes) -> bytes:
    return name.encode() if isinstance(name, str) else name


@st.composite
def queries(draw) -> bytes:
    """A query string: known or unknown names, repeated or not, values raw or %-encoded."""
    pairs = draw(st.lists(st.tuples(names, texts), max_size=6))
    encode = draw(st.booleans())
    parts = []
    for name, value in pairs:
        name = to_bytes(name)
        if encode:
            name, value = quote_from_bytes(name).encode(), quote_from_bytes(value).encode()
        parts.append(name + b"=" + value if draw(st.booleans()) or value else name)
    sep = draw(st.sampled_from([b"&", b";", b"&&"]))
    return sep.join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(sorted(ENDPOINTS)), query=queries())
def test_fuzzed_queries_never_5xx(app, path, query):
    check_answer(*asgi_get(app, path.encode(), query))


@settings(max_examples=100, deadline=None)
@given(path=st.one_of(st.binary(max_size=40).map(lambda b: b"/" + b),
                      st.sampled_from([b"/api/", b"/api/sample/", b"//api/sample", b"/static/..",
                                       b"/static/%2e%2e/app.py", b"/api/sample%00", b"/\xff",
                                       b"/api/" + b"a" * 10_000, b"/openapi.json"])),
       host=st.one_of(st.sampled_from([b"127.0.0.1", b"localhost:1", b"[::1]:8000", b"", b":",
                                       b"[", b"]", b"\xff", b"a" * 5000]),
                      st.binary(max_size=30)))
def test_fuzzed_paths_and_hosts_never_5xx(app, path, host):
    check_answer(*asgi_get(app, path, b"", [(b"host", host)]))


@pytest.mark.parametrize("query", [
    b"n=1&" * 2000,                          # the same parameter 2,000 times
    b"n=" + b"9" * 100_000,                  # a 100 kB number
    b"x" * 100_000,                          # a 100 kB unknown name
    b"digit=\xff&n=\xc3\x28",                # not UTF-8, raw
    b"digit=%ff&n=%c3%28",                   # not UTF-8, %-encoded
    b"n=4&n=5&n=abc",                        # repeated, the last invalid
    b"seed=" + str(2**64).encode(),          # past uint64
    b"digit=3&digit=4",
])
def test_malformed_queries_are_one_line_4xx(app, query):
    status, kind, body = asgi_get(app, b"/api/sample", query)
    check_answer(status, kind, body)
    assert status != 200 or kind == "image/png"


def test_missing_host_header_is_refused(app):
    status, kind, body = asgi_get(app, b"/api/model", headers=[])
    check_answer(status, kind, body)
    assert status == 400


def raw_http(port: int, request: bytes) -> bytes:
    """Send raw bytes to the server and read its whole answer (each request says close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


RAW = {  # name: (request bytes, the status class it must get)
    "100 kB query": (b"GET /api/sample?n=" + b"1" * 100_000
                     + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"4"),
    "non-UTF-8 query": (b"GET /api/sample?digit=\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        + b"Connection: close\r\n\r\n", b"4"),
    "non-UTF-8 path": (b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                       b"4"),
    "non-UTF-8 host": (b"GET /api/model HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n",
                       b"4"),
    "100 kB header": (b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"y" * 100_000
                      + b"\r\nConnection: close\r\n\r\n", b"24"),
    "POST": (b"POST /api/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
             + b"Connection: close\r\n\r\nabc", b"4"),
    "garbage": (b"GARBAGE\r\n\r\n", b"4"),
}


@pytest.fixture(scope="module")
def live(app):
    from test_serve import LiveServer

    server = LiveServer(app)
    yield server
    server.close()


@pytest.mark.parametrize("name", sorted(RAW))
def test_malformed_http_over_a_socket_is_never_5xx(live, name):
    """The same promise through uvicorn itself, its HTTP parser's answers included."""
    request, allowed = RAW[name]
    answer = raw_http(int(live.url.rsplit(":", 1)[1]), request)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line[:9] == b"HTTP/1.1 " and status_line[9:10] in allowed, status_line[:40]
    assert b"Traceback" not in answer
