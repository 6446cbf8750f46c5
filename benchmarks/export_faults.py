"""Break `mnistgan generate --overwrite` at every filesystem call, in a real process, and count
the outputs that were not one whole export afterwards (target 0).

For each call a replace makes (os.rename, os.replace, os.unlink, shutil.rmtree, os.fsync,
counted in a clean run first) and each k from 1 to its count, a fresh folder gets an old export
(npz, 200 + 50 images, a copy of one made first) and then `mnistgan generate --overwrite` (idx,
a new seed) runs in a child process that, at the k-th call of that function, either
  * fails it (OSError EIO): the run must end with one line saying which export OUT holds, or
  * SIGKILLs itself just before it: no code of ours runs after that instant.
Afterwards the folder is checked as the next user sees it: once right away (does OUT hold a whole
export now?) and once after `mnistgan.export.recover`, which every later `generate` into OUT
runs first. "Whole" means `mnistgan.export.verify` passes (every file with its manifest's
sha256) and the visible files are exactly the old export's or the new one's.

    python benchmarks/export_faults.py            # ~100 faults and kills, a few minutes
    python benchmarks/export_faults.py --quick    # only every third k
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import errno, json, os, shutil, signal, sys
op, k, how, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
calls = {"rename": 0, "replace": 0, "unlink": 0, "rmtree": 0, "fsync": 0}
def wrap(module, name):
    real = getattr(module, name)
    def wrapped(*a, **kw):
        calls[name] += 1
        if name == op and calls[name] == k:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.EIO, "injected failure")
        return real(*a, **kw)
    setattr(module, name, wrapped)
for module, name in ((os, "rename"), (os, "replace"), (os, "unlink"), (shutil, "rmtree"),
                     (os, "fsync")):
    wrap(module, name)
from mnistgan.cli import main
try:
    main(args)
finally:
    if how == "count":
        print("CALLS " + json.dumps(calls))
"""
OPS = ("rename", "replace", "unlink", "rmtree", "fsync")


def generate(out: Path, checkpoint: str | None, *extra: str) -> list[str]:
    args = ["generate", "--out", str(out), "--n-train", "200", "--n-test", "50", *extra]
    return args + (["--checkpoint", checkpoint] if checkpoint else [])


def child(op: str, k: int, how: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, op, str(k), how, *args], env=env,
                          capture_output=True, text=True)


def visible(out: Path) -> dict[str, str]:
    """Visible files -> sha256 (the manifest without its timing)."""
    from mnistgan.export import file_sha256

    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith("."):
            files[rel] = file_sha256(p)
            if rel == "manifest.json":
                files[rel] = json.dumps({**json.loads(p.read_text()), "timing": None})
    return files


def whole(out: Path, states: dict) -> str | None:
    """'old' or 'new' if OUT holds that export whole and nothing else visible; None if not."""
    from mnistgan.errors import UserError
    from mnistgan.export import verify

    try:
        verify(out)
    except (UserError, OSError, ValueError):
        return None
    got = visible(out)
    return next((name for name, files in states.items() if files == got), None)


def old_export(root: Path, checkpoint: str | None) -> Path:
    out = root / "old"
    done = child("none", 0, "count", generate(out, checkpoint, "--format", "npz"))
    assert done.returncode == 0, done.stderr
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="Run or checkpoint (default: bundled).")
    ap.add_argument("--quick", action="store_true", help="Only every third k of each call.")
    args = ap.parse_args()
    from mnistgan.export import recover

    new_args = ["--format", "idx", "--seed", "1", "--overwrite"]
    with tempfile.TemporaryDirectory(prefix="export-faults-") as tmp:
        root = Path(tmp)
        old = old_export(root, args.checkpoint)
        ref = root / "ref"
        shutil.copytree(old, ref)
        states = {"old": visible(ref)}
        done = child("none", 0, "count", generate(ref, args.checkpoint, *new_args))
        assert done.returncode == 0, done.stderr
        states["new"] = visible(ref)
        calls = json.loads(done.stdout.split("CALLS ", 1)[1])
        print(f"calls in one clean replace: {calls}")
        tally = {"faults": 0, "kills": 0, "whole_now": 0, "incomplete_after": 0,
                 "said_right": 0, "old": 0, "new": 0}
        for op in OPS:
            for k in range(1, calls[op] + 1, 3 if args.quick else 1):
                for how in ("fail", "kill"):
                    out = root / f"{op}-{k}-{how}"
                    shutil.copytree(old, out)
                    run = child(op, k, how, generate(out, args.checkpoint, *new_args))
                    tally["faults" if how == "fail" else "kills"] += 1
                    now = whole(out, states)
                    tally["whole_now"] += now is not None
                    if how == "fail":
                        said = "old" if "earlier export, unchanged" in run.stderr else "new"
                        tally["said_right"] += said == now and run.stderr.count("\n") <= 1
                    recover(out, lambda _: None)
                    after = whole(out, states)
                    hidden = [p.name for p in out.glob(".mnistgan-*")]
                    if after is None or hidden:
                        tally["incomplete_after"] += 1
                        print(f"INCOMPLETE: {op} #{k} {how}: {sorted(visible(out))} {hidden}")
                    else:
                        tally[after] += 1
    report(tally)
    sys.exit(0 if tally["incomplete_after"] == 0 else 1)


def report(t: dict) -> None:
    print(f"faults injected: {t['faults']} failed calls + {t['kills']} kills "
          f"= {t['faults'] + t['kills']}")
    print(f"a whole export in OUT right after: {t['whole_now']}; "
          f"failures whose message named the export OUT holds: {t['said_right']}/{t['faults']}")
    print(f"after recovery: old export {t['old']}, new export {t['new']}, "
          f"incomplete {t['incomplete_after']} (target 0)")


if __name__ == "__main__":
    main()
