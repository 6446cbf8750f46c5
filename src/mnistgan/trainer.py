"""The Trainer: a GAN's training loop as short named phases.

One step is a discriminator update on a real batch and a detached fake batch, then a generator
update on fresh noise (the seed tutorial's order). Statistics accumulate in a device buffer and
reach the host only every `log_every` steps, so the step itself never waits on the device. The
whole state (models, optimizers, position in the data order, every RNG, the statistics window)
round-trips through `state_dict`, which is what makes a resumed run bitwise equal to an
uninterrupted one on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnistgan._version import __version__
from mnistgan.augment import augment, parse_policy
from mnistgan.checkpoint import (
    Progress,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    save_state_dict,
)
from mnistgan.config import RunConfig
from mnistgan.data import Dataset
from mnistgan.data.batches import DeviceBatches
from mnistgan.distributed import World
from mnistgan.errors import Diverged, UserError
from mnistgan.losses import LOSSES, gradient_penalty, r1_penalty
from mnistgan.models import build_models
from mnistgan.run import RunDir
from mnistgan.runtime import AUTOCAST_DTYPES, describe, resolve_memory_format, resolve_precision
from mnistgan.sampling import Sampler, eval_mode, save_grid, to_uint8

STATS = ("d_loss", "g_loss", "d_real", "d_fake")
NONFINITE = ("d_loss", "g_loss", "D's gradients", "G's gradients")
MAX_ROLLBACKS, ROLLBACK_LR_FACTOR = 3, 0.5  # --on-nan rollback


@dataclass(frozen=True)
class Outcome:
    """How `Trainer.fit` ended: "finished" (the configured end, or --max-minutes) or
    "interrupted" (by `signal`, SIGINT or SIGTERM), after `step` steps; a checkpoint is saved
    either way."""

    ended: str
    step: int
    signal: int | None = None

    @property
    def exit_status(self) -> int:
        """The process's exit status by convention: 0, or 128 + the signal number."""
        return 0 if self.signal is None else 128 + self.signal


class Trainer:
    """Trains one GAN run; `fit` runs it to the end or to a signal, checkpointing as it goes."""

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
        self.cfg, self.device, self.run, self.echo, self.world = cfg, device, run, echo, world
        self.tensorboard = tensorboard  # a mnistgan.tensorboard.TensorBoardSink, or None
        t = cfg.train
        world.check_batch(t.batch_size)
        if world.distributed and (cfg.optim.r1_gamma > 0 or cfg.optim.loss == "wgan-gp"):
            raise UserError("R1 and gradient penalties need double backward, which "
                            "DistributedDataParallel does not support: train them in one process")
        if world.distributed and t.on_nan == "rollback":
            raise UserError("--on-nan rollback works in one process; under torchrun a "
                            "divergence stops every rank (resume in one process to roll back)")
        self.precision = resolve_precision(t.precision, device)
        layout = resolve_memory_format(t.memory_format, device, self.precision)
        self.speed = describe(t.precision, self.precision, layout)  # for the console
        torch.manual_seed(t.seed)  # weight init, identical on every device
        g, d = build_models(cfg.model)
        self.G = g.to(device, memory_format=layout)
        self.D = d.to(device, memory_format=layout)
        # What the steps call: DDP wrappers under torchrun, the modules themselves otherwise,
        # compiled if asked. The G step runs D frozen and outside DDP: it needs D's gradient
        # with respect to its input only, and no all-reduce of D's gradients.
        self.G_step, self.D_step, self.D_frozen = world.wrap(self.G), world.wrap(self.D), self.D
        if t.compile:
            self.G_step, self.D_step, self.D_frozen = (
                torch.compile(m) for m in (self.G_step, self.D_step, self.D_frozen))
        self.num_classes = cfg.model.num_classes
        self.loss = LOSSES[cfg.optim.loss]
        o = cfg.optim
        self.aux_weight = o.aux_weight if cfg.model.aux_classifier else 0.0
        g_weight = o.aux_weight if o.aux_weight_g is None else o.aux_weight_g
        self.aux_weight_g = g_weight if cfg.model.aux_classifier else 0.0
        self.twin = cfg.model.twin_classifier
        self.policy = parse_policy(o.augment)
        self.opt_g = adam(self.G, o.lr_g, (o.beta1, o.beta2), device)
        self.opt_d = adam(self.D, o.lr_d, (o.beta1, o.beta2), device)
        self.ema = EMA(self.G, o.ema_decay) if o.ema_decay > 0 else None
        dtype = AUTOCAST_DTYPES.get(self.precision, torch.float32)
        self.autocast = torch.autocast(device.type, dtype, enabled=self.precision != "fp32")
        # fp16 only: loss scaling, one scaler per network (each skips its own overflowed steps).
        self.scaler_d, self.scaler_g = (torch.amp.GradScaler(device.type,
                                                             enabled=self.precision == "fp16")
                                        for _ in range(2))
        self.noise = torch.Generator(device).manual_seed(t.seed)
        fixed = torch.Generator().manual_seed(t.seed + 1)
        self.fixed_z = torch.randn(t.grid_size, cfg.model.z_dim, generator=fixed).to(device)
        self.fixed_y = (torch.arange(t.grid_size, device=device) // 10) % 10 if self.num_classes else None
        self.batches = DeviceBatches(
            data.train_images, data.train_labels, batch_size=t.batch_size, seed=t.seed,
            device=device, normalize=cfg.data.normalize,
        )
        self.progress = Progress()
        self.window = torch.zeros(len(STATS), dtype=torch.float64, device=device)
        self.window_steps = 0
        self.window_began = 0.0  # progress.seconds when the statistics window opened
        # Sticky flags, set on the device within the step that goes non-finite (NONFINITE);
        # read, one host sync, only where the run logs, evaluates or checkpoints.
        self.nonfinite = torch.zeros(len(NONFINITE), device=device)
        self._unit = torch.ones(1, device=device)
        self.good_step = 0  # the last step the flags were read clean
        self._stop_signal: int | None = None
        self._halted = False  # a signal or the time limit ended the loop
        self._loaded_evaluator = None
        self.data = data

    # -- one step -------------------------------------------------------------------------

    def latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fresh noise (n, z_dim) and, for a conditional model, uniformly drawn labels (n,):
        this rank's share of the global draw, which every rank makes alike."""
        z = torch.randn(n, self.cfg.model.z_dim, generator=self.noise, device=self.device)
        if not self.num_classes:
            return self.world.shard(z), None
        y = torch.randint(0, self.num_classes, (n,), generator=self.noise, device=self.device)
        return self.world.shard(z), self.world.shard(y)

    def d_step(self, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Update D on a real and a fake batch; returns [d_loss, D(real), D(fake)] on the device."""
        y_real = labels if self.num_classes else None
        n = len(real)
        z, y_fake = self.latents(n * self.world.size)
        with torch.no_grad(), self.autocast:
            fake = self.G(z, y_fake)  # detached: D's loss needs no gradient in G
        with self.autocast:
            # Real and fake in one pass (D has no batch norm, so this equals two passes).
            both = self.augmented(torch.cat([real, fake.to(real.dtype)]))
            y_both = None if y_real is None else torch.cat([y_real, y_fake])
            if self.aux_weight:  # D also learns to name the real digit
                logits, classes = self.D_step(both, y_both, classes=True)
            else:
                logits = self.D_step(both, y_both)
            real_logits, fake_logits = logits[:n], logits[n:]
            d_loss = self.loss.d_loss(real_logits.float(), fake_logits.float())
            d_loss = d_loss + self.penalties(real, fake, y_real, y_fake)
            if self.aux_weight:
                d_loss = d_loss + self.aux_weight * self.class_loss_d(classes.float(), n,
                                                                      y_real, y_fake)
        self.update(d_loss, self.D, self.opt_d, self.scaler_d, slot=2)
        scores = torch.stack([torch.sigmoid(real_logits.float()).mean(),
                              torch.sigmoid(fake_logits.float()).mean()])
        return torch.cat([d_loss.detach().reshape(1), scores.detach()])

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """D's view of a batch: DiffAugment's transforms (`optim.augment`), or the batch itself."""
        return augment(x, self.policy, self.noise) if self.policy else x

    def class_loss_d(self, classes: torch.Tensor, n: int, y_real: torch.Tensor,
                     y_fake: torch.Tensor) -> torch.Tensor:
        """D's class term: the head names real digits; a twin head (TAC-GAN) names the fakes'
        asked-for digits. `classes` covers real then fake: (2n, K), or (2n, 2, K) with a twin."""
        if not self.twin:
            return F.cross_entropy(classes[:n], y_real)
        return F.cross_entropy(classes[:n, 0], y_real) + F.cross_entropy(classes[n:, 1], y_fake)

    def class_loss_g(self, classes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """G's class term: be named as asked by the real-trained head; with a twin, minus the
        twin's cross entropy, which cancels the pull toward easily classified digits."""
        if not self.twin:
            return F.cross_entropy(classes, y)
        return F.cross_entropy(classes[:, 0], y) - F.cross_entropy(classes[:, 1], y)

    def penalties(self, real, fake, y_real, y_fake) -> torch.Tensor | float:
        o, total = self.cfg.optim, 0.0
        if o.r1_gamma > 0:
            total = total + 0.5 * o.r1_gamma * r1_penalty(self.D, real, y_real)
        if o.loss == "wgan-gp":
            total = total + o.gp_weight * gradient_penalty(self.D, real, fake, y_fake)
        return total

    def g_step(self, n: int) -> torch.Tensor:
        """Update G to make D call fresh fakes real; returns g_loss on the device."""
        z, y = self.latents(n)
        with frozen(self.D):
            with self.autocast:
                fake = self.augmented(self.G_step(z, y))
                if self.aux_weight_g:  # ... and G to draw digits D names as asked
                    logits, classes = self.D_frozen(fake, y, classes=True)
                    g_loss = self.loss.g_loss(logits.float())
                    g_loss = g_loss + self.aux_weight_g * self.class_loss_g(classes.float(), y)
                else:
                    g_loss = self.loss.g_loss(self.D_frozen(fake, y).float())
            self.update(g_loss, self.G, self.opt_g, self.scaler_g, slot=3)
        if self.ema is not None:
            self.ema.update(self.G, self.progress.step)
        return g_loss.detach()

    def update(self, loss: torch.Tensor, model: torch.nn.Module, opt, scaler, slot: int) -> None:
        """One optimizer step of `model` on `loss`. In fp16 the scaler finds overflowed gradients
        and skips those steps (normal in fp16); elsewhere a non-finite gradient sets a flag."""
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if not scaler.is_enabled():
            self.flag_gradients(model, slot)
        scaler.step(opt)
        scaler.update()

    def flag_gradients(self, model: torch.nn.Module, slot: int) -> None:
        """Set `nonfinite[slot]` if any gradient of `model` is NaN or inf: one fused pass on the
        device (the check GradScaler uses; multiplying by 1 leaves every gradient bit-exact)."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        torch._amp_foreach_non_finite_check_and_unscale_(grads, self.nonfinite[slot:slot + 1],
                                                         self._unit)

    def train_step(self) -> None:
        p = self.progress
        self.set_learning_rates()
        real, labels = self.batches.batch(p.epoch, p.batch)  # the global batch
        n = len(real)
        d_stats = self.d_step(self.world.shard(real), self.world.shard(labels))
        g_loss = self.g_step(n)
        stats = torch.stack([d_stats[0], g_loss, d_stats[1], d_stats[2]])
        self.window += stats.double()
        self.nonfinite[:2] += (~torch.isfinite(stats[:2])).float()
        self.window_steps += 1
        p.step, p.batch, p.images = p.step + 1, p.batch + 1, p.images + n

    def set_learning_rates(self) -> None:
        """Both learning rates for this step: the configured ones, halved per rollback, times the
        linear decay of `optim.lr_decay`. A pure function of the progress, so resume is exact."""
        o, p = self.cfg.optim, self.progress
        scale = ROLLBACK_LR_FACTOR ** p.rollbacks * lr_schedule(p.step, self.total_steps(),
                                                                o.lr_decay, o.lr_floor)
        for opt, lr in ((self.opt_g, o.lr_g), (self.opt_d, o.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    # -- the loop ---------------------------------------------------------------------------

    def total_steps(self) -> int:
        t = self.cfg.train
        by_epochs = t.epochs * self.batches.steps_per_epoch
        return by_epochs if t.max_steps is None else min(by_epochs, t.max_steps)

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
            self.draw_real()
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
        self.draw_fake(p.epoch + 1)
        p.epoch, p.batch = p.epoch + 1, 0
        self.checkpoint()
        self.draw_curves()
        if self.run is not None and p.epoch % self.cfg.train.snapshot_every == 0:
            save_checkpoint(self.run.snapshot(p.epoch), self.state_dict())

    @contextlib.contextmanager
    def _epoch_bar(self) -> Iterator[tqdm]:
        p, epochs = self.progress, self.cfg.train.epochs
        bar = tqdm(
            total=self.batches.steps_per_epoch, initial=p.batch, desc=f"epoch {p.epoch + 1}/{epochs}",
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
        what = ", ".join(name for name, flag in zip(NONFINITE, flags) if flag)
        where = f"training diverged: non-finite {what} between steps {self.good_step} and {p.step}"
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
        stats = dict(zip(STATS, means))
        rate = self.window_steps * t.batch_size / max(p.seconds - self.window_began, 1e-9)
        record = {"epoch": p.epoch, "step": p.step, "images": p.images, **stats,
                  "images_per_s": rate, "seconds": p.seconds}
        self.window_began = p.seconds
        self.window.zero_()
        self.window_steps = 0
        if self.run is not None:
            self.run.append_log(record)
        if self.tensorboard is not None:
            self.tensorboard.record(record)
        self.echo(
            "Epoch [{}/{}], d_loss: {:.6f}, g_loss: {:.6f} D real: {:.6f}, D fake: {:.6f}".format(
                p.epoch, t.epochs, stats["d_loss"], stats["g_loss"], stats["d_real"], stats["d_fake"]
            )
        )
        return f"d={stats['d_loss']:.3f} g={stats['g_loss']:.3f} {rate:.0f} img/s"

    def sampling_generator(self) -> torch.nn.Module:
        """The generator used for pictures and evaluation: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.G

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [-1, 1] in eval mode (no batch-statistics coupling)."""
        with eval_mode(self.sampling_generator()) as g, self.autocast:
            return g(z, y).float()

    def evaluate(self) -> dict:
        """FID of `eval_samples` fixed-noise samples and the collapse alarm; keeps best.pt."""
        from mnistgan.metrics import class_balance, feature_stats, frechet_distance
        from mnistgan.metrics.report import real_reference

        ev = self._evaluator()
        images = self.draw(self.cfg.train.eval_samples, seed=self.cfg.train.seed + 2)
        emb = ev.embed(images)
        fid = frechet_distance(feature_stats(emb.features), real_reference(self.data, ev).stats)
        balance = class_balance(emb.predicted)
        p = self.progress
        record = {"epoch": p.epoch, "step": p.step, "images": p.images, "seconds": p.seconds,
                  "fid": fid, "eval_samples": len(images), "class_share": balance.share}
        if self.run is not None:
            self.run.append_log(record)
        if self.tensorboard is not None:
            self.tensorboard.record(record)
        self.echo(f"step {p.step}: FID {fid:.3f} on {len(images)} samples")
        if (warning := balance.warning()) is not None:
            self.echo(f"warning: {warning}")
        if p.best_fid is None or fid < p.best_fid:
            p.best_fid = fid
            if self.run is not None:
                save_checkpoint(self.run.best, self.state_dict())
        return record

    def _evaluator(self):
        if self._loaded_evaluator is None:
            from mnistgan.metrics import load_evaluator

            self._loaded_evaluator = load_evaluator(device=str(self.device))
        return self._loaded_evaluator

    def draw(self, n: int, seed: int) -> torch.Tensor:
        """n uint8 samples from noise seeded `seed` (not the training noise, which stays put)."""
        sampler = Sampler(self.sampling_generator(), self.cfg, device=self.device, source="run")
        return sampler.sample(n, seed=seed)

    def draw_real(self) -> None:
        if self.run is not None:
            n = min(self.cfg.train.grid_size, len(self.batches.images))
            idx = self.batches.order(0)[:n]
            save_grid(self.run.real_grid, self.batches.images[idx].cpu())

    def draw_fake(self, epoch: int) -> None:
        if self.run is not None:
            nrow = 10 if self.num_classes else 8  # conditional: one row per digit
            images = to_uint8(self.sample(self.fixed_z, self.fixed_y))
            save_grid(self.run.fake_grid(epoch), images, nrow)
            if self.tensorboard is not None:
                self.tensorboard.grid(images, nrow, self.progress.step)

    def draw_curves(self) -> None:
        """RUN/images/curves.png from the log so far: losses, D's outputs, FID over time."""
        if self.run is not None:
            from mnistgan.plots import save_curves

            save_curves(self.run.path)

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

    def state_dict(self) -> dict:
        if self.nonfinite.any():  # callers check healthy() first; this is the last guard
            raise Diverged(f"refusing to save a non-finite state (step {self.progress.step})")
        return {
            "mnistgan_version": __version__,
            "config": self.cfg.to_dict(),
            "progress": asdict(self.progress),
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "ema": None if self.ema is None else self.ema.module.state_dict(),
            "scalers": {"d": self.scaler_d.state_dict(), "g": self.scaler_g.state_dict()},
            "rng": capture_rng(self.noise),
            "window": {"sums": self.window.cpu(), "steps": self.window_steps,
                       "began": self.window_began},
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])
        for name, scaler in (("d", self.scaler_d), ("g", self.scaler_g)):
            if scaler.is_enabled() and state.get("scalers", {}).get(name):
                scaler.load_state_dict(state["scalers"][name])
        restore_rng(state["rng"], self.noise)
        self.progress = Progress(**state["progress"])
        self.window = state["window"]["sums"].to(self.device)
        self.window_steps = state["window"]["steps"]
        self.window_began = state["window"]["began"]
        self.good_step = self.progress.step


def lr_schedule(step: int, total: int, decay: float, floor: float = 0.0) -> float:
    """The learning-rate multiplier at `step` of `total`: 1, then over the last `decay` fraction
    of the steps a straight line to `floor` (reached at `total`, after the last step)."""
    start = total * (1.0 - decay)
    if decay <= 0 or step < start:
        return 1.0
    return floor + (1.0 - floor) * max(0.0, (total - step) / (total - start))


def adam(model: torch.nn.Module, lr: float, betas: tuple[float, float],
         device: torch.device) -> torch.optim.Adam:
    """Adam with its fused kernel where PyTorch has one for the device (one pass per step over
    all parameters; bitwise repeatable like the default), the foreach one elsewhere."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=fused or None)


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """`model`'s parameters need no gradient inside (G's step back-propagates through D to its
    input only, which skips D's weight gradients)."""
    model.requires_grad_(False)
    try:
        yield
    finally:
        model.requires_grad_(True)


class EMA:
    """An exponential moving average of G's weights, with a warm-up: the decay after k updates
    is min(decay, (1 + k) / (10 + k)), so early averages are not dominated by the random init.
    Buffers (batch-norm statistics) are copied from G, not averaged."""

    def __init__(self, g: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(g).requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, g: torch.nn.Module, updates: int) -> None:
        d = min(self.decay, (1 + updates) / (10 + updates))
        for avg, cur in zip(self.module.parameters(), g.parameters()):
            avg.lerp_(cur, 1.0 - d)
        for avg, cur in zip(self.module.buffers(), g.buffers()):
            avg.copy_(cur)
