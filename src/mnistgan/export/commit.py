"""Putting a finished export in place: what may be replaced, the atomic replace, and recovery.

Trust: the only names ever moved or removed in OUT are the entries of a format's own class
(`Writer.entries`), `manifest.json`, and mnistgan's hidden folders `.mnistgan-export-PID`
(staging) and `.mnistgan-replaced-PID` (the earlier export set aside). An old manifest is read
only to check that it is mnistgan's and which of those names it owns; a foreign or malformed one
is a one-line `UserError` before anything is touched.

Replace: every file is staged and fsynced first; then, inside OUT, the old manifest and entries
are renamed into the aside folder, the new entries renamed in, the new manifest renamed in last
(the commit point), and only then the aside folder removed. A failure of any call before the
commit point moves everything back (OUT holds the old export, as it was); after it, OUT holds
the new export and at worst the aside folder is left. A kill between the first and the last
rename leaves the parts in OUT and the two hidden folders; `recover`, which every export into
OUT runs first, finishes that move (the staged export is complete: its manifest is written last)
where OUT shows no export, and otherwise only removes the stale hidden folders.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mnistgan.atomic import fsync_dir
from mnistgan.errors import UserError
from mnistgan.export.writers import WRITERS

MANIFEST = "manifest.json"
STAGING, ASIDE = ".mnistgan-export-", ".mnistgan-replaced-"
Log = Callable[[str], None]


def staging_dir(out: Path, pid: int | None = None) -> Path:
    return out / f"{STAGING}{os.getpid() if pid is None else pid}"


def aside_dir(out: Path, pid: int | None = None) -> Path:
    return out / f"{ASIDE}{os.getpid() if pid is None else pid}"


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def manifest_entries(path: Path) -> list[str]:
    """The entries an mnistgan manifest owns, each one of its format's own names; anything else
    (bad JSON, wrong types, an unknown format, a name like `../x`) is a one-line `UserError`."""
    what = f"{path} is not an mnistgan manifest"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{what} ({type(e).__name__}); not replacing anything") from None
    if not isinstance(manifest, dict) or manifest.get("created_by") != "mnistgan generate":
        raise UserError(f"{what} (no created_by: mnistgan generate); not replacing anything")
    fmt, entries = manifest.get("format"), manifest.get("entries")
    if not isinstance(fmt, str) or fmt not in WRITERS:
        raise UserError(f"{what} (unknown format {fmt!r}); not replacing anything")
    own = WRITERS[fmt].entries
    if not isinstance(entries, list) or not all(isinstance(e, str) and e in own for e in entries):
        raise UserError(f"{what} (entries {entries!r} are not {fmt}'s own {list(own)}); "
                        "not replacing anything")
    return list(dict.fromkeys(entries))


def check_out(out: Path, entries: tuple[str, ...], overwrite: bool) -> list[str] | None:
    """What of an earlier export in `out` to replace (None: there is none); refuses what is not
    mnistgan's to replace, touching nothing."""
    if _exists(out) and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    old = None
    if _exists(out / MANIFEST):
        if not overwrite:
            raise UserError(f"--out {out} already holds an export; use --overwrite to replace it")
        old = manifest_entries(out / MANIFEST)
    for name in entries:
        if _exists(out / name) and name not in (old or []):
            raise UserError(f"--out {out}: {out / name} exists and is not part of an mnistgan "
                            "export; not replacing it (choose a new folder)")
    return old


def _move_in(out: Path, staging: Path, aside: Path, new: tuple[str, ...], done: list) -> None:
    """The renames of a replace, each one skipped when already done, so a move a kill broke off
    can be finished by running this again. `done` records (src, dst) for rolling back."""
    def move(src: Path, dst: Path) -> None:
        os.rename(src, dst)
        done.append((src, dst))

    if not aside.is_dir():
        os.mkdir(aside)
        done.append((None, aside))
    if _exists(out / MANIFEST):  # the staged manifest is not in yet: this one is the old one
        move(out / MANIFEST, aside / MANIFEST)
    old = manifest_entries(aside / MANIFEST) if _exists(aside / MANIFEST) else []
    for name in old:  # an old name also in `new` is old while the new one is still staged
        if _exists(out / name) and not _exists(aside / name) and (
                name not in new or _exists(staging / name)):
            move(out / name, aside / name)
    for name in new:
        if _exists(staging / name):
            move(staging / name, out / name)
    fsync_dir(out)
    os.replace(staging / MANIFEST, out / MANIFEST)  # the commit point
    fsync_dir(out)


def _roll_back(done: list) -> None:
    """Undo the renames of a failed replace, newest first: OUT as it was."""
    for src, dst in reversed(done):
        if src is None:
            os.rmdir(dst)
        else:
            os.rename(dst, src)
    done.clear()


def commit(out: Path, staging: Path, new: tuple[str, ...], log: Log) -> None:
    """Replace whatever export `out` holds by the one staged in `staging` (see the module
    docstring); raises with OUT as it was, or returns with the new export in place."""
    aside, done = aside_dir(out), []
    try:
        _move_in(out, staging, aside, new, done)
    except BaseException:
        try:
            _roll_back(done)
        except OSError as e:
            raise UserError(
                f"export to {out} failed and could not be undone ({e}); the new export is "
                f"complete in {staging} and the earlier one in {aside}: the next `mnistgan "
                f"generate --out {out}` finishes the replace") from None
        raise
    remove_tree(aside, log, f"{out} holds the new export, but the earlier one set aside in")


def remove_tree(path: Path, log: Log, what: str) -> None:
    """Remove one of mnistgan's hidden folders; a failure is a warning, not an error: what is
    left is hidden and the next export into OUT removes it."""
    try:
        if _exists(path):
            shutil.rmtree(path)
    except OSError as e:
        log(f"warning: {what} {path} could not be removed ({e.strerror or e}); the next "
            "`mnistgan generate` into this folder removes it")


def _pid(name: str, prefix: str) -> int | None:
    tail = name[len(prefix):]
    return int(tail) if name.startswith(prefix) and tail.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process exports one thing at a time: its old folders are stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _hidden(out: Path, prefix: str) -> list[tuple[Path, int]]:
    """mnistgan's hidden folders of that kind in `out` whose process is gone (not symlinks:
    those are never followed, whatever their name)."""
    found = []
    for path in sorted(out.iterdir()):
        pid = _pid(path.name, prefix)
        if pid is not None and not path.is_symlink() and path.is_dir() and not _alive(pid):
            found.append((path, pid))
    return found


def recover(out: Path, log: Log) -> None:
    """Finish what a killed export into `out` left. Only where OUT shows no export (its
    manifest was already set aside) is a broken-off replace completed from the staged export,
    which is whole (its manifest is written last); otherwise the hidden folders are stale and
    removed. So a visible export is never replaced here, and only mnistgan's hidden folders and
    the names its formats own are touched."""
    if not out.is_dir():
        return
    for aside, pid in _hidden(out, ASIDE):
        staging = staging_dir(out, pid)
        if (not _exists(out / MANIFEST) and staging.is_dir() and not staging.is_symlink()
                and _exists(staging / MANIFEST)):
            new = tuple(manifest_entries(staging / MANIFEST))
            _move_in(out, staging, aside, new, [])
            log(f"{out}: finished the replace an interrupted `mnistgan generate` (pid {pid}) had "
                "begun; it holds that run's new export")
        remove_tree(aside, log, "the earlier export set aside in")
    for staging, _ in _hidden(out, STAGING):
        remove_tree(staging, log, "the unfinished export staged in")
