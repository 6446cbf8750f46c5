"""The run lifecycle: decide which run to train (a new one, the next free name, a resume, one that
replaces an old run), train it, and say how it ended.

`mnistgan train` parses its flags and calls `train` here; so does the Python API
(`mnistgan.train(...)`), the notebook and the tests. The keyword arguments are the flags of
`mnistgan train` with underscores (`max_steps=500` is `--max-steps 500`):

    import mnistgan
    result = mnistgan.train("seed", max_steps=500, out="runs/s")   # trains, writes runs/s
    mnistgan.train(resume="runs/s", max_steps=1000)                 # continues it exactly
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mnistgan.checkpoint import load_checkpoint
from mnistgan.config import DEFAULT_PRESET, RunConfig, load_preset
from mnistgan.data import Dataset, load_dataset
from mnistgan.distributed import World
from mnistgan.errors import UserError
from mnistgan.run import RunDir, next_run_dir
from mnistgan.runtime import resolve_device
from mnistgan.trainer import Outcome, Trainer

Log = Callable[[str], None]
# Keyword (flag) -> where it goes in the RunConfig; `lr` sets both learning rates.
CHANGES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{k: ("train", (k,)) for k in (
        "epochs", "max_steps", "max_minutes", "batch_size", "seed", "device", "log_every",
        "checkpoint_every", "snapshot_every", "eval_every", "precision", "on_nan",
        "memory_format", "compile")},
    **{k: ("data", (k,)) for k in ("dataset", "data_dir", "normalize")},
    "lr": ("optim", ("lr_g", "lr_d")),
}
# What a resume may change: where and how long or fast it trains, never what it trains.
RESUMABLE = {"epochs", "max_steps", "max_minutes", "log_every", "checkpoint_every",
             "snapshot_every", "device", "data_dir", "eval_every", "on_nan",
             "precision", "memory_format", "compile"}


@dataclass
class Plan:
    """What `train_planned` trains: the config, the run folder (None when nothing is written: a
    dry run, or a torchrun rank other than 0), and the checkpoint a resume continues from."""

    cfg: RunConfig
    run: RunDir | None
    state: dict | None = None


@dataclass(frozen=True)
class Result:
    """How a training call ended: its run folder (None on a rank that wrote none), the config,
    and the Trainer's `Outcome` (finished or interrupted, at which step)."""

    run: Path | None
    cfg: RunConfig
    outcome: Outcome

    @property
    def exit_status(self) -> int:
        return self.outcome.exit_status


def config_changes(**changes: Any) -> dict[str, dict[str, Any]]:
    """Flat keywords (`max_steps=5`, `lr=1e-3`) as `RunConfig.replace` sections; None is unset."""
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise UserError(f"unknown training option {unknown[0]!r}")
    out: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        if value is not None:
            section, keys = CHANGES[name]
            out.setdefault(section, {}).update({k: value for k in keys})
    return out


def plan(preset: str | None = None, *, config: str | os.PathLike | None = None,
         resume: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
         overwrite: bool = False, create: bool = True, **changes: Any) -> Plan:
    """Decide the run. `resume`: the run folder to continue (only `RESUMABLE` changes allowed);
    else a new run of `preset` (default cdcgan) or of a `config` file, in `out` or the next free
    runs/PRESET-NNN. With `create` False nothing is made on disk (a dry run)."""
    overrides = config_changes(**changes)
    if resume is not None:
        given = {"preset": preset, "config": config, "out": out, "overwrite": overwrite or None,
                 **changes}
        fixed = [k for k, v in given.items() if v is not None and k not in RESUMABLE]
        if fixed:
            name = fixed[0].replace("_", "-")
            raise UserError(f"--{name} cannot change on --resume: the run's config fixes it")
        run = RunDir.existing(resume)
        state = load_checkpoint(run.last)
        cfg = RunConfig.from_dict(state["config"]).replace(**overrides)
        return Plan(cfg, run if create else None, state)
    if config is not None:
        from mnistgan.config_file import read_config_file  # lazy: YAML support is optional

        cfg = read_config_file(config, preset).replace(**overrides)
    else:
        cfg = load_preset(preset or DEFAULT_PRESET).replace(**overrides)
    if not create:
        return Plan(cfg, None)
    folder = next_run_dir(cfg.preset) if out is None else Path(out)
    return Plan(cfg, RunDir.create(folder, cfg, overwrite=overwrite))


def train_planned(p: Plan, *, data: Dataset | None = None, world: World | None = None,
                  tensorboard: bool = False, log: Log | None = print) -> Result:
    """Train a planned run to its end or to a signal (SIGINT, SIGTERM: a clean stop with a
    checkpoint). `data` defaults to the config's data set; `world` to torchrun's environment."""
    from mnistgan.tensorboard import open_sink  # lazy: tensorboard is an optional extra

    world = World.from_env() if world is None else world
    say = log if (log is not None and world.main) else _silent
    device = world.device(resolve_device(p.cfg.train.device))
    if data is None:
        data = load_dataset(p.cfg.data.dataset, p.cfg.data.data_dir, log=say)
    resumed = None if p.state is None else p.state["progress"]["step"]
    world.join(device)
    sink = open_sink(p.run, resumed, tensorboard)
    try:
        trainer = Trainer(p.cfg, data, device=device, run=p.run, world=world,
                          echo=tqdm.write if say is not _silent else _silent, tensorboard=sink)
        if p.state is not None:
            trainer.load_state_dict(p.state)
        if p.run is not None:
            _announce(p, trainer, device, world, say)
        outcome = trainer.fit()
    except (UserError, OSError) as e:  # before the first checkpoint, say where the old run is
        note = "" if p.run is None else p.run.kept_note()
        if not note or (isinstance(e, OSError) and e.errno is None):
            raise
        what = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
        raise UserError(f"{what}{note}") from None
    finally:
        world.leave()
        if sink is not None:
            sink.close()
    if p.run is not None and outcome.ended == "finished":
        say(f"done: {outcome.step} steps; weights in {p.run.generator} and {p.run.discriminator}")
    return Result(None if p.run is None else p.run.path, p.cfg, outcome)


def _announce(p: Plan, trainer: Trainer, device: torch.device, world: World, say: Log) -> None:
    if p.state is not None:
        p.run.truncate_log(trainer.progress.step)
        say(f"resumed {p.run.path} at step {trainer.progress.step}")
    procs = f" x {world.size} processes" if world.distributed else ""
    say(f"training {p.cfg.preset} on {device}{procs} ({trainer.speed}) for "
        f"{trainer.total_steps()} steps -> {p.run.path}")


def train(preset: str | None = None, *, config: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
          overwrite: bool = False, data: Dataset | None = None, tensorboard: bool = False,
          log: Log | None = print, **changes: Any) -> Result:
    """Train a GAN run, or continue one (`resume="runs/x"`), and return how it ended.

    The keywords are `mnistgan train`'s flags (`epochs`, `max_steps`, `max_minutes`,
    `batch_size`, `lr`, `seed`, `device`, `dataset`, `data_dir`, `precision`, ...); on resume
    only those in `RESUMABLE` may change. `data` passes a loaded data set instead of the
    config's. `log` receives the progress lines (None: quiet). Under torchrun every rank calls
    this; rank 0 writes the run.
    """
    if tensorboard:
        from mnistgan.tensorboard import require_tensorboard  # lazy: an optional extra

        require_tensorboard()  # before a run folder is made
    world = World.from_env()
    p = plan(preset, config=config, resume=resume, out=out, overwrite=overwrite,
             create=world.main, **changes)
    return train_planned(p, data=data, world=world, tensorboard=tensorboard, log=log)


def interrupted_message(result: Result) -> str:
    """What a stopped run tells its user: the signal, the step, and how to go on."""
    name = signal.Signals(result.outcome.signal).name
    return (f"{name}: stopped at step {result.outcome.step}, checkpoint saved; resume with:\n"
            f"  mnistgan train --resume {result.run}")


def _silent(_: str) -> None:
    pass


__all__ = ["CHANGES", "DEFAULT_PRESET", "RESUMABLE", "Plan", "Result", "config_changes", "plan",
           "train", "train_planned"]
