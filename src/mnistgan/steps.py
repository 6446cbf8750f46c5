"""One GAN training step and the state it changes: G and D, their optimizers, the EMA of G,
autocast and loss scaling, the noise, the position in the data order and the statistics window.

One step is a discriminator update on a real batch and a detached fake batch, then a generator
update on fresh noise (the seed tutorial's order). Statistics accumulate in a device buffer and
reach the host only when the Trainer logs, so the step itself never waits on the device. The
whole state round-trips through `state_dict`, which is what makes a resumed run bitwise equal to
an uninterrupted one on the CPU. The loop around the steps is `mnistgan.trainer.Trainer`.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F

from mnistgan._version import __version__
from mnistgan.augment import augment, parse_policy
from mnistgan.checkpoint import Progress, capture_rng, restore_rng
from mnistgan.config import RunConfig
from mnistgan.data import Dataset
from mnistgan.data.batches import DeviceBatches
from mnistgan.distributed import World
from mnistgan.errors import Diverged
from mnistgan.losses import LOSSES, gradient_penalty, r1_penalty
from mnistgan.models import build_models
from mnistgan.optim import EMA, adam, frozen, lr_schedule
from mnistgan.runtime import AUTOCAST_DTYPES, describe, resolve_memory_format, resolve_precision
from mnistgan.sampling import eval_mode

STATS = ("d_loss", "g_loss", "d_real", "d_fake")
NONFINITE = ("d_loss", "g_loss", "D's gradients", "G's gradients")
ROLLBACK_LR_FACTOR = 0.5  # --on-nan rollback: both learning rates halve per rollback


class GANSteps:
    """G, D and their training state; `train_step` makes one step. The Trainer builds on it."""

    def __init__(self, cfg: RunConfig, data: Dataset, *, device: torch.device,
                 world: World | None = None):
        self.cfg, self.device, self.world = cfg, device, world or World()
        t = cfg.train
        self._build_networks()
        self._build_optimizers()
        self.noise = torch.Generator(device).manual_seed(t.seed)
        fixed = torch.Generator().manual_seed(t.seed + 1)
        self.fixed_z = torch.randn(t.grid_size, cfg.model.z_dim, generator=fixed).to(device)
        rows = (torch.arange(t.grid_size, device=device) // 10) % 10
        self.fixed_y = rows if self.num_classes else None
        self.batches = DeviceBatches(
            data.train_images, data.train_labels, batch_size=t.batch_size, seed=t.seed,
            device=device, normalize=cfg.data.normalize,
        )
        self.progress = Progress()
        self.window = torch.zeros(len(STATS), dtype=torch.float64, device=device)
        self.window_steps = 0
        self.window_began = 0.0  # progress.seconds when the statistics window opened
        # Sticky flags, set on the device within the step that goes non-finite (NONFINITE);
        # the Trainer reads them (one host sync) only where the run logs, evaluates or saves.
        self.nonfinite = torch.zeros(len(NONFINITE), device=device)
        self._unit = torch.ones(1, device=device)

    def _build_networks(self) -> None:
        """G and D on the device in their memory format, and what the steps call."""
        cfg, device, world, t = self.cfg, self.device, self.world, self.cfg.train
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

    def _build_optimizers(self) -> None:
        """Losses, optimizers, the EMA of G, autocast and (fp16) the loss scalers."""
        cfg, device = self.cfg, self.device
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

    def total_steps(self) -> int:
        t = self.cfg.train
        by_epochs = t.epochs * self.batches.steps_per_epoch
        return by_epochs if t.max_steps is None else min(by_epochs, t.max_steps)

    def sampling_generator(self) -> torch.nn.Module:
        """The generator used for pictures and evaluation: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.G

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [-1, 1] in eval mode (no batch-statistics coupling)."""
        with eval_mode(self.sampling_generator()) as g, self.autocast:
            return g(z, y).float()

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
