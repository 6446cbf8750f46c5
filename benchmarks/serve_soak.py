"""Soak `mnistgan serve`: thousands of requests from many threads over loopback, with memory
that must stay flat and no answer that is a 5xx or a wrong status.

The server is the real application under uvicorn, in this process, on a free 127.0.0.1 port
(nothing else can reach it); the clients are `--threads` threads, each with one keep-alive
HTTP connection. The mix, fixed by `--seed`: 70% PNG grids (n 1-64, any digit or one), 10% GIF
walks (2-4 paths, 4-8 steps), 10% `/api/model`, 10% bad requests that must get a 4xx. A warm-up
of the same mix runs first, so RSS (this process: server and clients) is measured after the
allocator and the model's buffers have settled; RSS is read again after the soak. It stops by
itself: after `--requests`, or at `--max-seconds`, whichever is first.

    python benchmarks/serve_soak.py                          # 2,000 requests, 8 threads, bundle
    python benchmarks/serve_soak.py --requests 300 --json soak.json   # what the tests run
    python benchmarks/serve_soak.py --checkpoint runs/cdcgan  # a run of your own

Prints requests/s, p50/p99 latency, RSS before/after and the CPU; exits 1 if any answer had
the wrong status (a 5xx, a 200 to a bad request, a 4xx to a good one) or a request failed.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from mnistgan.bench import describe_device
from mnistgan.sampling import load_generator
from mnistgan.serve import Engine, create_app, model_info
from mnistgan.serve.app import _bind

BAD = ["/api/sample?n=0", "/api/sample?n=9999", "/api/sample?digit=x", "/api/sample?seed=-1",
       "/api/sample?digits=3", "/api/walk?steps=1", "/api/walk?walks=99", "/api/model?x=1",
       "/api/sample?n=%ff", "/nope", "/api/sample/"]


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc), in MiB."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def request_for(i: int, seed: int) -> tuple[str, bool]:
    """The i-th request of the mix: (path and query, whether it is a good request)."""
    rng = random.Random(seed * 1_000_003 + i)
    roll = rng.random()
    digit = "" if rng.random() < 0.3 else f"digit={rng.randrange(10)}&"
    if roll < 0.7:
        n, seed_ = rng.choice([1, 4, 16, 64]), rng.randrange(2**32)
        return f"/api/sample?{digit}n={n}&seed={seed_}", True
    if roll < 0.8:
        return (f"/api/walk?{digit}walks={rng.randint(2, 4)}&steps={rng.randint(4, 8)}"
                f"&seed_a={rng.randrange(1000)}&seed_b={rng.randrange(1000)}"), True
    if roll < 0.9:
        return "/api/model", True
    return rng.choice(BAD), False


class Server:
    """The app under uvicorn in a daemon thread on a free loopback port (`url`): real HTTP,
    real sockets. tests/test_serve.py uses it too."""

    def __init__(self, app):
        import uvicorn

        self.sock = _bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the server did not start")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def client(port: int, indices: range, seed: int, deadline: float) -> list[tuple[float, int, bool]]:
    """One thread's share: (latency s, status, status as expected) per request; status 0 is a
    request that failed outright (connection error, timeout)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for i in indices:
        if time.monotonic() > deadline:
            break
        path, good = request_for(i, seed)
        start = time.perf_counter()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status = 0
        ok = status == 200 if good else 400 <= status < 500
        out.append((time.perf_counter() - start, status, ok))
    conn.close()
    return out


def blast(port: int, start: int, count: int, threads: int, seed: int, deadline: float) -> list:
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda t: client(port, range(start + t, start + count, threads), seed,
                                          deadline), range(threads))
        return [r for part in parts for r in part]


def soak(source: str | None, requests: int, threads: int, warmup: int, seed: int,
         max_seconds: float) -> dict:
    torch.set_num_threads(1)  # as `mnistgan serve` does
    sampler = load_generator(source)
    server = Server(create_app(Engine(sampler), model_info(sampler, source)))
    deadline = time.monotonic() + max_seconds
    try:
        warm = blast(server.port, 0, warmup, threads, seed, deadline)
        gc.collect()
        before = rss_mib()
        t0 = time.perf_counter()
        results = blast(server.port, warmup, requests, threads, seed, deadline)
        seconds = time.perf_counter() - t0
        gc.collect()
        after = rss_mib()
    finally:
        server.close()
    latencies = sorted(r[0] for r in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
    return {"source": sampler.source, "requests": len(results), "asked": requests,
            "threads": threads, "warmup": len(warm), "seconds": round(seconds, 2),
            "requests_per_s": round(len(results) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p99_ms": round(1000 * p99, 2),
            "rss_before_mib": round(before, 1), "rss_after_mib": round(after, 1),
            "rss_growth_mib": round(after - before, 1), "statuses": statuses,
            "wrong_status": sum(not r[2] for r in results) + sum(not r[2] for r in warm),
            "server_errors": sum(r[1] >= 500 for r in results + warm),
            "device": describe_device(torch.device("cpu"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="run folder or checkpoint (default: the "
                   "bundled generator)")
    p.add_argument("--requests", type=int, default=2000, help="requests measured (default 2000)")
    p.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    p.add_argument("--warmup", type=int, default=200, help="requests before RSS is read")
    p.add_argument("--seed", type=int, default=0, help="fixes the request mix")
    p.add_argument("--max-seconds", type=float, default=600, help="stop by then in any case")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    r = soak(a.checkpoint, a.requests, a.threads, a.warmup, a.seed, a.max_seconds)
    print(f"{r['device']}\nserve soak: {r['source']}, {r['requests']:,} requests "
          f"({r['warmup']} warm-up before), {r['threads']} threads, loopback\n"
          f"  {r['requests_per_s']:,.1f} requests/s, latency p50 {r['p50_ms']:.1f} ms, "
          f"p99 {r['p99_ms']:.1f} ms\n"
          f"  RSS {r['rss_before_mib']:.1f} MiB before, {r['rss_after_mib']:.1f} MiB after "
          f"({r['rss_growth_mib']:+.1f} MiB)\n"
          f"  statuses {r['statuses']}; wrong status {r['wrong_status']}, "
          f"5xx {r['server_errors']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 1 if r["wrong_status"] or r["requests"] < r["asked"] else 0


if __name__ == "__main__":
    sys.exit(main())
