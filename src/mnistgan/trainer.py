"""The Trainer: a GAN's training loop as short named phases around `mnistgan.steps.GANSteps`.

`fit` runs steps to the configured end (epochs, --max-steps, --max-minutes) or to SIGINT /
SIGTERM and returns an `Outcome`. Around the steps it logs every `log_every` steps (one host
sync), evaluates every `eval_every` (FID and the collapse alarm, through mnistgan.metrics),
draws the grids and curves, checkpoints every `checkpoint_every` steps and at epoch ends, and
acts on a NaN or inf (stop, or roll back to the last good checkpoint).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from tqdm import tqdm

from mnistgan.checkpoint import load_checkpoint, save_checkpoint, save_state_dict
from mnistgan.config import RunConfig
from mnistgan.data import Dataset
from mnistgan.distributed import World
from mnistgan.errors import Diverged, UserError
from mnistgan.metrics import check_collapse, fid_score, load_evaluator
from mnistgan.metrics.registry import BY_KEY
from mnistgan.recorder import Recorder
from mnistgan.run import RunDir
from mnistgan.sampling import Sampler, to_uint8
from mnistgan.steps import NONFINITE, STATS, GANSteps

MAX_ROLLBACKS = 3  # --on-nan rollback gives up after this many


@dataclass(frozen=True)
class Outcome:
    """How `Trainer.fit` ended: "finished" (the configured end, or --max-minutes) or
    "interrupted" (by `signal`, SIGINT or SIGTERM), after `step` steps; a checkpoint is saved
    either way."""

    ended: str
    step: int
    signal: int | None = None

    def __str__(self) -> str:
        how = self.ended if self.signal is None else f"interrupted by signal {self.signal}"
        return f"{how} after {self.step} steps"

    @property
    def exit_status(self) -> int:
        """The process's exit status by convention: 0, or 128 + the signal number."""
        return 0 if self.signal is None else 128 + self.signal


def check_world(cfg: RunConfig, world: World) -> None:
    """What torchrun cannot train, refused before anything is built."""
    world.check_batch(cfg.train.batch_size)
    if world.distributed and (cfg.optim.r1_gamma > 0 or cfg.optim.loss == "wgan-gp"):
        raise UserError("R1 and gradient penalties need double backward, which "
                        "DistributedDataParallel does not support: train them in one process")
    if world.distributed and cfg.train.on_nan == "rollback":
        raise UserError("--on-nan rollback works in one process; under torchrun a "
                        "divergence stops every rank (resume in one process to roll back)")


class Trainer(GANSteps):
    """Trains one GAN run; `fit` runs it to the end or to a signal, checkpointing as it goes.
    The step itself and the state it changes are `GANSteps`'; this class is the loop around it:
    stops, logging, evaluation, pictures, checkpoints and what a NaN does."""

    def __init__(
        self,
        cfg: RunConfig,
        data: Dataset,
        *,
        device: torch.device,
        run: RunDir | None = None,
        echo: Callable[[str], None] = tqdm.write,
        world: World | None = None,
        tensorboard=None,
    ):
        world = world or World()
        check_world(cfg, world)
        super().__init__(cfg, data, device=device, world=world)
        self.run, self.echo, self.data = run, echo, data
        # tensorboard: a mnistgan.tensorboard.TensorBoardSink, or None
        self.recorder = Recorder(run, tensorboard, echo)
        self.good_step = 0  # the last step the non-finite flags were read clean
        self._stop_signal: int | None = None
        self._halted = False  # a signal or the time limit ended the loop
        self._loaded_evaluator = None

    # -- the loop ---------------------------------------------------------------------------

    def out_of_time(self) -> bool:
        limit = self.cfg.train.max_minutes
        return limit is not None and self.progress.seconds >= 60 * limit

    def stopping(self) -> bool:
        """A signal or the time limit, agreed by every rank (a collective under torchrun)."""
        return self.world.agree(self._stop_signal is not None or self.out_of_time(), self.device)

    def fit(self) -> Outcome:
        """Train to the configured end, or until SIGINT/SIGTERM; returns how it ended."""
        p, total = self.progress, self.total_steps()
        if p.step == 0:
            self.save_real_grid()
            self.checkpoint()  # at once: a run folder is resumable, and can roll back, from step 0
        self._halted = self.out_of_time()  # the same on every rank: seconds come from the state
        with self._signals():
            while (p.step < total or not self.healthy()) and not self._halted:
                with self._epoch_bar() as bar:
                    self._run_epoch(bar, total)
                if p.batch == self.batches.steps_per_epoch and self.healthy():
                    self.end_epoch()
        self.checkpoint()
        self.save_weights()
        ended = "finished" if self._stop_signal is None else "interrupted"
        return Outcome(ended, p.step, self._stop_signal)

    def _run_epoch(self, bar: tqdm, total: int) -> None:
        p, t = self.progress, self.cfg.train
        clock = time.perf_counter()
        while p.batch < self.batches.steps_per_epoch and p.step < total:
            self.train_step()
            bar.update(1)
            now = time.perf_counter()
            p.seconds, clock = p.seconds + now - clock, now
            if self.at_boundary() and not self.healthy():
                continue  # rolled back to the last good checkpoint
            if p.step % t.log_every == 0:
                bar.set_postfix_str(self.log())
            if t.eval_every and p.step % t.eval_every == 0 and self.world.main:
                self.evaluate()
            if p.step % t.checkpoint_every == 0:
                self.checkpoint()
            if self.stopping():
                self._halted = True
                return

    def end_epoch(self) -> None:
        p = self.progress
        self.save_fake_grid(p.epoch + 1)
        p.epoch, p.batch = p.epoch + 1, 0
        self.checkpoint()
        self.recorder.curves()
        if self.run is not None and p.epoch % self.cfg.train.snapshot_every == 0:
            save_checkpoint(self.run.snapshot(p.epoch), self.state_dict())

    @contextlib.contextmanager
    def _epoch_bar(self) -> Iterator[tqdm]:
        p, epochs = self.progress, self.cfg.train.epochs
        bar = tqdm(
            total=self.batches.steps_per_epoch, initial=p.batch,
            desc=f"epoch {p.epoch + 1}/{epochs}",
            unit="step", leave=False, disable=None if self.world.main else True, dynamic_ncols=True,
        )
        try:
            yield bar
        finally:
            bar.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM end the current step, then the run saves and stops cleanly."""

        def stop(signum: int, frame: object) -> None:
            self._stop_signal = signum

        old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def at_boundary(self) -> bool:
        """Steps that log, evaluate or checkpoint: where the non-finite flags are read."""
        s, t = self.progress.step, self.cfg.train
        return (s % t.log_every == 0 or s % t.checkpoint_every == 0
                or bool(t.eval_every and s % t.eval_every == 0))

    def healthy(self) -> bool:
        """True if no loss or gradient went NaN or inf since the flags were last read (one host
        sync). Otherwise `--on-nan stop` raises `Diverged`, and `--on-nan rollback` reloads the
        last good checkpoint, lowers both learning rates and returns False."""
        if self.world.distributed:  # every rank sees every rank's flags, and decides alike
            torch.distributed.all_reduce(self.nonfinite, op=torch.distributed.ReduceOp.MAX)
        flags = self.nonfinite.tolist()
        p = self.progress
        if not any(flags):
            self.good_step = p.step
            return True
        what = ", ".join(name for name, flag in zip(NONFINITE, flags, strict=True) if flag)
        where = f"training diverged: non-finite {what} between steps {self.good_step} and {p.step}"
        if not self.world.main:  # rank 0 owns the run folder and says what it keeps
            raise Diverged(f"{where}; rank {self.world.rank} stops with rank 0")
        last = None if self.run is None else self.run.last
        if last is None or not last.is_file():
            raise Diverged(f"{where}; no checkpoint was written")
        if self.cfg.train.on_nan != "rollback":
            raise Diverged(f"{where}; the last good checkpoint {last} is kept (resume with "
                           "--on-nan rollback to retry at a lower learning rate)")
        if p.rollbacks >= MAX_ROLLBACKS:
            raise Diverged(f"{where}, after {p.rollbacks} rollbacks; the last good checkpoint "
                           f"{last} is kept")
        self.rollback(load_checkpoint(last), where)
        return False

    def rollback(self, state: dict, why: str) -> None:
        """Go back to `state` (the last checkpoint) with both learning rates lowered."""
        p, rollbacks = self.progress, self.progress.rollbacks + 1
        self.load_state_dict(state)
        vars(p).update(vars(self.progress), rollbacks=rollbacks)
        self.progress = p  # the loops hold this object
        self.set_learning_rates()  # halved once more: they follow progress.rollbacks
        self.nonfinite.zero_()
        self.run.truncate_log(p.step)
        lr_g, lr_d = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
        self.echo(f"{why}; rolled back to step {p.step} with lr_g {lr_g:g}, lr_d {lr_d:g} "
                  f"(rollback {rollbacks} of {MAX_ROLLBACKS})")

    # -- logging, pictures, files -------------------------------------------------------------

    def log(self) -> str:
        """Write the window's means to log.jsonl and the tutorial's line to the console."""
        p, t = self.progress, self.cfg.train
        means = (self.window / max(self.window_steps, 1)).tolist()  # the one host sync
        stats = dict(zip(STATS, means, strict=True))
        rate = self.window_steps * t.batch_size / max(p.seconds - self.window_began, 1e-9)
        record = {"epoch": p.epoch, "step": p.step, "images": p.images, **stats,
                  "images_per_s": rate, "seconds": p.seconds}
        self.window_began = p.seconds
        self.window.zero_()
        self.window_steps = 0
        self.recorder.record(record)
        self.recorder.tutorial_line(p.epoch, t.epochs, stats)
        return f"d={stats['d_loss']:.3f} g={stats['g_loss']:.3f} {rate:.0f} img/s"

    def evaluate(self) -> dict:
        """FID of `eval_samples` fixed-noise samples and the collapse alarm, through the metrics
        API (`fid_score`, `check_collapse`, with their guards); keeps best.pt."""
        t, p = self.cfg.train, self.progress
        if self._loaded_evaluator is None:
            self._loaded_evaluator = load_evaluator(device=str(self.device))
        images = self.sample_images(t.eval_samples, seed=t.seed + 2)
        fid = fid_score(images, self.data, n=len(images), evaluator=self._loaded_evaluator)
        balance = check_collapse(images, self._loaded_evaluator, n=len(images))
        record = {"epoch": p.epoch, "step": p.step, "images": p.images, "seconds": p.seconds,
                  "fid": fid, "eval_samples": len(images), "class_share": balance.share}
        self.recorder.record(record)
        self.echo(f"step {p.step}: FID {BY_KEY['fid'].show(fid)} on {len(images)} samples")
        if (warning := balance.warning()) is not None:
            self.echo(f"warning: {warning}")
        if p.best_fid is None or fid < p.best_fid:
            p.best_fid = fid
            if self.run is not None:
                save_checkpoint(self.run.best, self.state_dict())
        return record

    def sample_images(self, n: int, seed: int) -> torch.Tensor:
        """n uint8 samples from noise seeded `seed` (not the training noise, which stays put)."""
        sampler = Sampler(self.sampling_generator(), self.cfg, device=self.device, source="run")
        return sampler.sample(n, seed=seed)

    def save_real_grid(self) -> None:
        n = min(self.cfg.train.grid_size, len(self.batches.images))
        self.recorder.real_grid(self.batches.images[self.batches.order(0)[:n]].cpu())

    def save_fake_grid(self, epoch: int) -> None:
        if self.run is not None:
            nrow = 10 if self.num_classes else 8  # conditional: one row per digit
            images = to_uint8(self.sample(self.fixed_z, self.fixed_y))
            self.recorder.fake_grid(epoch, images, nrow, self.progress.step)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.good_step = self.progress.step

    def checkpoint(self) -> None:
        # healthy(): a poisoned state never overwrites the last good checkpoint; after a
        # rollback the state is the one last.pt already holds.
        # healthy() first: under torchrun it is a collective every rank must join.
        if self.healthy() and self.run is not None:
            save_checkpoint(self.run.last, self.state_dict())
            self.run.checkpoint_written()

    def save_weights(self) -> None:
        """generator.pth / discriminator.pth: plain state dicts, loadable by the tutorial's code."""
        if self.run is not None:
            for path, model in ((self.run.generator, self.G), (self.run.discriminator, self.D)):
                save_state_dict(path, model.state_dict())

    # -- state ----------------------------------------------------------------------------------


