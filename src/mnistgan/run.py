"""The run folder: one directory per training run, laid out so a person or a script finds
everything.

    RUN/config.json                  the whole resolved config
    RUN/log.jsonl                    one JSON object per logged step
    RUN/images/real_images.png       real data, drawn when training starts
    RUN/images/fake_images-{e}.png   the fixed-noise grid after epoch e (1-based, as the tutorial)
    RUN/checkpoints/last.pt          the complete training state, for --resume
    RUN/checkpoints/best.pt          the state with the lowest in-training FID (--eval-every)
    RUN/checkpoints/epoch-{e}.pt     kept snapshots
    RUN/generator.pth, discriminator.pth   plain state dicts, as the tutorial saves them
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mnistgan.atomic import write_text_atomic
from mnistgan.config import RunConfig
from mnistgan.errors import UserError

# Everything mnistgan writes at the top of a run folder (hidden temp files aside).
RUN_ENTRIES = frozenset({"config.json", "log.jsonl", "images", "checkpoints", "generator.pth",
                         "discriminator.pth", "tensorboard", "metrics.json", "report.html"})


def _refuse_odd_folder(path: Path) -> None:
    """--out may not be the working folder, one above it, the home folder or the root: a run
    there would mix with (and --overwrite would set aside) everything else in it."""
    here, target = Path.cwd().resolve(), path.resolve()
    if target == here or target in here.parents or target == Path.home().resolve():
        raise UserError(f"--out {path}: is the working folder, the home folder or above them; "
                        "give a folder of its own, such as runs/NAME")


class RunDir:
    """Paths and small writers for one run folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.log = self.path / "log.jsonl"
        self.images = self.path / "images"
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.generator = self.path / "generator.pth"
        self.discriminator = self.path / "discriminator.pth"

    @classmethod
    def create(cls, path: str | os.PathLike, cfg: RunConfig, *, overwrite: bool = False) -> RunDir:
        """A new run folder; an existing non-empty one is refused unless `overwrite`.

        `overwrite` deletes nothing yet: the old run is renamed to `.NAME.replaced` beside it and
        removed only once the new run has written its first checkpoint (`checkpoint_written`),
        so a new run that fails to start, or is killed early, never costs the old one."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserError(f"--out {run.path}: exists and is not a directory")
        _refuse_odd_folder(run.path)
        if run.path.is_dir() and any(run.path.iterdir()):
            if not overwrite:
                raise UserError(
                    f"--out {run.path} already holds a run; use --resume {run.path} to continue "
                    "it or --overwrite to replace it"
                )
            why = run.not_a_run()
            if why is not None:
                raise UserError(f"--overwrite: {run.path} is not provably an mnistgan run "
                                f"({why}); not touching it")
            run._move_aside()
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run.config, json.dumps(cfg.to_dict(), indent=2) + "\n")
            run.images.mkdir(exist_ok=True)
            run.checkpoints.mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {run.path}: cannot create ({e.strerror or e})") from None
        return run

    def not_a_run(self) -> str | None:
        """None if this folder holds only what mnistgan writes into a run, with a config.json
        that is a RunConfig; otherwise why not. `--overwrite` sets aside nothing else."""
        try:
            RunConfig.from_dict(json.loads(self.config.read_text(encoding="utf-8")))
        except (OSError, ValueError, UserError):
            return "no config.json of an mnistgan run"
        foreign = sorted(p.name for p in self.path.iterdir()
                         if p.name not in RUN_ENTRIES and not p.name.startswith("."))
        if foreign:
            return f"it also holds {foreign[0]!r}"
        if self.checkpoints.is_dir():
            odd = sorted(p.name for p in self.checkpoints.iterdir()
                         if not (p.name.endswith(".pt") or p.name.startswith(".")))
            if odd:
                return f"checkpoints/ also holds {odd[0]!r}"
        return None

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

    def snapshot(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.pt"

    def fake_grid(self, epoch: int) -> Path:
        return self.images / f"fake_images-{epoch}.png"
