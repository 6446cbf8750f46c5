"""The run folder: one directory per training run, laid out so a person or a script finds
everything. This module is the only one that knows the layout: every other module asks a
`RunDir` for its paths.

    runs/PRESET-NNN/                 where a run goes when --out is not given (`next_run_dir`)
    RUN/config.json                  the whole resolved config
    RUN/log.jsonl                    one JSON object per logged step
    RUN/images/real_images.png       real data, drawn when training starts
    RUN/images/fake_images-{e}.png   the fixed-noise grid after epoch e (1-based, as the tutorial)
    RUN/checkpoints/last.pt          the complete training state, for --resume
    RUN/checkpoints/best.pt          the state with the lowest in-training FID (--eval-every)
    RUN/checkpoints/epoch-{e}.pt     kept snapshots
    RUN/generator.pth, discriminator.pth   plain state dicts, as the tutorial saves them
    RUN/images/curves.png            training curves (mnistgan.plots)
    RUN/metrics.json                 the evaluation cached by `mnistgan report`
    RUN/report.html                  the run's page (mnistgan.run_report)
    RUN/tensorboard/                 TensorBoard event files (--tensorboard)

`--overwrite` replaces only a folder that is provably an mnistgan run (`check_replaceable`), and
only a folder of its own: never the working directory, one above it, or the home directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from mnistgan.atomic import write_text_atomic
from mnistgan.config import RunConfig
from mnistgan.errors import UserError

RUNS_ROOT = Path("runs")
EPOCH_GRID = re.compile(r"fake_images-(\d+)\.png$")
SNAPSHOT = re.compile(r"epoch-\d{4,}\.pt$")
TEMP = re.compile(r"\..+\.tmp-\d+$")  # atomic.temp_path's names


def next_run_dir(preset: str, root: str | os.PathLike = RUNS_ROOT) -> Path:
    """`root/PRESET-NNN` with the lowest NNN not taken yet."""
    root = Path(root)
    taken = {p.name for p in root.glob(f"{preset}-*")} if root.is_dir() else set()
    n = 0
    while f"{preset}-{n:03d}" in taken:
        n += 1
    return root / f"{preset}-{n:03d}"


class RunDir:
    """Paths and small writers for one run folder."""

    def __init__(self, path: str | os.PathLike):
        p = self.path = Path(path)
        self.config, self.log = p / "config.json", p / "log.jsonl"
        self.images, self.checkpoints = p / "images", p / "checkpoints"
        self.last, self.best = self.checkpoints / "last.pt", self.checkpoints / "best.pt"
        # plain state dicts, as the tutorial saves them
        self.generator, self.discriminator = p / "generator.pth", p / "discriminator.pth"
        self.real_grid, self.curves = self.images / "real_images.png", self.images / "curves.png"
        self.metrics, self.report = p / "metrics.json", p / "report.html"
        self.tensorboard = p / "tensorboard"

    @classmethod
    def of(cls, source: str | os.PathLike) -> RunDir | None:
        """The run a run folder or a checkpoint inside RUN/checkpoints/ belongs to, or None."""
        path = Path(source)
        if path.is_dir():
            return cls(path)
        return cls(path.parent.parent) if path.parent.name == "checkpoints" else None

    def sample_checkpoint(self) -> Path:
        """The checkpoint to sample from: best.pt (lowest in-training FID) if any, else last.pt."""
        return self.best if self.best.is_file() else self.last

    @classmethod
    def create(cls, path: str | os.PathLike, cfg: RunConfig, *, overwrite: bool = False) -> RunDir:
        """A new run folder; an existing non-empty one is refused unless `overwrite`.

        `overwrite` deletes nothing yet: the old run is renamed to `.NAME.replaced` beside it and
        removed only once the new run has written its first checkpoint (`checkpoint_written`),
        so a new run that fails to start, or is killed early, never costs the old one."""
        run = cls(path)
        check_own_folder(run.path)
        if run.path.is_dir() and any(run.path.iterdir()):
            if not overwrite:
                raise UserError(
                    f"--out {run.path} already holds a run; use --resume {run.path} to continue "
                    "it or --overwrite to replace it"
                )
            run.check_replaceable()
        try:
            if overwrite and run.path.is_dir() and any(run.path.iterdir()):
                run._move_aside()
            run.path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run.config, json.dumps(cfg.to_dict(), indent=2) + "\n")
            run.images.mkdir(exist_ok=True)
            run.checkpoints.mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {run.path}: cannot create ({e.strerror or e}){run.kept_note()}"
                            ) from None
        return run

    def kept_note(self) -> str:
        """Where the run that --overwrite replaces is now, for an error message."""
        if self.replaced.is_dir():
            return f"; the run it replaces is kept whole at {self.replaced}"
        return ""

    def check_replaceable(self) -> None:
        """A one-line `UserError` unless this folder is provably an mnistgan run: a config.json
        that parses as a RunConfig, a checkpoints/ folder or a log.jsonl as mnistgan writes them,
        and nothing at the top level that mnistgan does not write."""
        where = f"--overwrite: {self.path}"
        try:
            RunConfig.from_dict(json.loads(self.config.read_text(encoding="utf-8")))
        except (OSError, ValueError, UserError):
            raise UserError(f"{where} has no mnistgan config.json; not a run, nothing "
                            "deleted") from None
        known = {p.name for p in (self.config, self.log, self.images, self.checkpoints,
                                  self.generator, self.discriminator, self.metrics, self.report,
                                  self.tensorboard)}
        foreign = sorted(p.name for p in self.path.iterdir()
                         if p.name not in known and not TEMP.match(p.name))
        if foreign:
            raise UserError(f"{where} holds {foreign[0]!r}, which mnistgan does not write; "
                            "nothing deleted")
        if self.checkpoints.exists() and not self._checkpoints_as_written():
            raise UserError(f"{where}: checkpoints/ holds what mnistgan does not write there; "
                            "nothing deleted")
        if not (self._checkpoints_as_written() or self._log_as_written()):
            raise UserError(f"{where} has neither checkpoints/ nor log.jsonl as mnistgan writes "
                            "them; not a run, nothing deleted")

    def _checkpoints_as_written(self) -> bool:
        if not self.checkpoints.is_dir() or self.checkpoints.is_symlink():
            return False
        names = {self.last.name, self.best.name}
        return all(p.is_file() and (p.name in names or SNAPSHOT.match(p.name) or TEMP.match(p.name))
                   for p in self.checkpoints.iterdir())

    def _log_as_written(self) -> bool:
        if not self.log.is_file():
            return False
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        try:
            records = [json.loads(line) for line in lines[:-1]]  # the last may be torn by a kill
        except ValueError:
            return False
        return all(isinstance(r, dict) and isinstance(r.get("step"), int) for r in records)

    @property
    def replaced(self) -> Path:
        """Where `--overwrite` keeps the old run until the new one has a checkpoint."""
        return self.path.with_name(f".{self.path.name}.replaced")

    def _move_aside(self) -> None:
        if self.replaced.exists():
            if self.last.is_file():  # this run got going, so the one it replaced was due to go
                shutil.rmtree(self.replaced)
            else:  # this attempt never checkpointed: it holds nothing; keep the older run aside
                shutil.rmtree(self.path)
                return
        os.replace(self.path, self.replaced)

    def checkpoint_written(self) -> None:
        """Called after each checkpoint: the run `--overwrite` set aside is no longer needed."""
        if self.replaced.exists():
            shutil.rmtree(self.replaced, ignore_errors=True)

    @classmethod
    def existing(cls, path: str | os.PathLike) -> RunDir:
        """An existing run folder with a checkpoint to resume from."""
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"--resume {run.path}: no such run folder")
        if not run.last.is_file():
            kept = (f"; the run it replaced is kept at {run.replaced}" if run.replaced.is_dir()
                    else "")
            raise UserError(f"--resume {run.path}: no checkpoint at {run.last}{kept}")
        return run

    def append_log(self, record: dict[str, Any]) -> None:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        """The logged records; a torn last line (a kill mid-write) is skipped."""
        if not self.log.is_file():
            return []
        records = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_log(self, step: int) -> None:
        """Drop records after `step`: on resume they will be logged again, identically."""
        kept = [r for r in self.read_log() if r.get("step", 0) <= step]
        write_text_atomic(self.log, "".join(json.dumps(r) + "\n" for r in kept))

    def read_metrics(self, key: dict | None = None) -> dict | None:
        """The evaluation report cached in metrics.json (under `key`, when given), or None when
        there is none, it was made under another key, or the file is damaged."""
        try:
            cached = json.loads(self.metrics.read_text(encoding="utf-8"))
            if key is None or cached.get("key") == key:
                return dict(cached["report"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a missing or damaged cache is recomputed
        return None

    def write_metrics(self, key: dict, report: dict) -> None:
        """Cache an evaluation report in metrics.json under `key` (what it depends on)."""
        write_text_atomic(self.metrics, json.dumps({"key": key, "report": report}, indent=2) + "\n")

    def snapshot(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.pt"

    def fake_grid(self, epoch: int) -> Path:
        return self.images / f"fake_images-{epoch}.png"

    def epoch_grids(self) -> list[tuple[int, Path]]:
        """(epoch, path) of every per-epoch fixed-noise grid, in epoch order."""
        found = [(int(m.group(1)), p) for p in self.images.glob("fake_images-*.png")
                 if (m := EPOCH_GRID.search(p.name))]
        return sorted(found)


def check_own_folder(path: Path) -> None:
    """A one-line `UserError` unless `path` can be a run folder of its own: not a file, not the
    working directory or a folder above it (the filesystem root too), not the home directory."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: exists and is not a directory")
    target, cwd = path.resolve(), Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise UserError(f"--out {path}: is the working directory or above it; give a run "
                        "folder of its own, e.g. --out runs/NAME")
    if target == Path.home().resolve():
        raise UserError(f"--out {path}: is the home directory; give a run folder of its own, "
                        "e.g. --out runs/NAME")
