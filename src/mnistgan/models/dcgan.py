"""A DCGAN shaped for 28x28, unconditional or class-conditional.

Generator: z -> FC to (2ch, 7, 7) -> two 4x4 stride-2 transposed convs (14x14, then 28x28) with
batch norm and ReLU -> tanh. With `num_classes > 0` it takes the label one-hot beside the noise
and its batch norms are class-conditional (a per-class gain and bias, as in BigGAN), so every
layer knows the digit it draws.

Discriminator: two 4x4 stride-2 convs (14x14, 7x7) with LeakyReLU 0.2 -> a linear logit. With
`num_classes > 0` it is a projection discriminator (Miyato & Koyama 2018): the logit gains the
inner product of a class embedding with the globally sum-pooled features. Optional spectral
normalisation on every weight (Miyato et al. 2018). With `classifier=True` D also predicts the
digit from the same pooled features (an AC-GAN head, Odena et al. 2017): the Trainer teaches it on
real digits and asks G to draw digits it recognises, which makes labels stick within an epoch.
With `twin=True` it has a second, twin head that the Trainer teaches on *fake* digits (TAC-GAN,
Gong et al. 2019): G's class term becomes the difference of the two heads' cross entropies, which
cancels AC-GAN's pull toward easily classified, typical digits. `mbstd > 0` appends a minibatch
standard-deviation channel (StyleGAN) over groups of that many images before the logit, so D sees
how varied a batch is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are looked up by class: (N, C, H, W), (N,) -> (N, C, H, W)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        g = self.gain(labels)[:, :, None, None]  # (N, C, 1, 1)
        b = self.bias(labels)[:, :, None, None]
        return self.bn(x) * g + b


class _Norm(nn.Module):
    """Plain batch norm, or the conditional one; one call signature for both."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.cond = num_classes > 0
        self.norm = (ConditionalBatchNorm2d(channels, num_classes) if self.cond
                     else nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x, labels) if self.cond else self.norm(x)


class DCGenerator(nn.Module):
    """(z (N, z_dim), labels (N,) or None) -> images (N, 1, 28, 28) in [-1, 1]."""

    def __init__(self, z_dim: int = 100, ch: int = 64, num_classes: int = 0, depth: int = 0):
        super().__init__()
        self.z_dim, self.ch, self.num_classes, self.depth = z_dim, ch, num_classes, depth
        # A conditional G also sees its label from the start, one-hot beside the noise.
        self.fc = nn.Linear(z_dim + num_classes, 2 * ch * 7 * 7, bias=False)
        self.norm0 = _Norm(2 * ch, num_classes)
        self.up1 = nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1, bias=False)
        self.norm1 = _Norm(ch, num_classes)
        if depth == 0:
            self.up2 = nn.ConvTranspose2d(ch, 1, 4, stride=2, padding=1)
            return
        # Deeper: `depth` 3x3 convs at 14x14, then 28x28 features drawn by a last 3x3 conv.
        self.mid = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1, bias=False) for _ in range(depth))
        self.mid_norms = nn.ModuleList(_Norm(ch, num_classes) for _ in range(depth))
        self.up2 = nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1, bias=False)
        self.norm2 = _Norm(ch // 2, num_classes)
        self.out = nn.Conv2d(ch // 2, 1, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, nn.functional.one_hot(labels, self.num_classes).to(z.dtype)], 1)
        x = self.fc(z).view(z.size(0), 2 * self.ch, 7, 7)  # (N, 2ch, 7, 7)
        x = torch.relu(self.norm0(x, labels))
        x = torch.relu(self.norm1(self.up1(x), labels))  # (N, ch, 14, 14)
        if self.depth == 0:
            return torch.tanh(self.up2(x))  # (N, 1, 28, 28)
        for conv, norm in zip(self.mid, self.mid_norms, strict=True):
            x = torch.relu(norm(conv(x), labels))
        x = torch.relu(self.norm2(self.up2(x), labels))  # (N, ch/2, 28, 28)
        return torch.tanh(self.out(x))


def minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C + 1, H, W): each image gains one channel holding the mean standard
    deviation of the features over its group of `group` consecutive images (the whole batch when
    N is not a multiple of `group`). Consecutive groups keep a real-then-fake batch unmixed."""
    n, c, hh, ww = h.shape
    g = group if n % group == 0 else n
    std = h.float().view(-1, g, c, hh, ww).var(1, unbiased=False).add(1e-8).sqrt()  # (N/g, ...)
    s = std.mean((1, 2, 3)).to(h.dtype).repeat_interleave(g)  # (N,)
    return torch.cat([h, s[:, None, None, None].expand(n, 1, hh, ww)], 1)


class DCDiscriminator(nn.Module):
    """(images (N, 1, 28, 28), labels (N,) or None) -> logits (N,)."""

    def __init__(self, ch: int = 64, num_classes: int = 0, spectral: bool = False,
                 classifier: bool = False, twin: bool = False, mbstd: int = 0, depth: int = 0):
        super().__init__()
        self.num_classes, self.mbstd = num_classes, mbstd
        sn = spectral_norm if spectral else (lambda m: m)
        self.conv1 = sn(nn.Conv2d(1, ch, 4, stride=2, padding=1))  # (N, ch, 14, 14)
        self.conv2 = sn(nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1))  # (N, 2ch, 7, 7)
        # Deeper: `depth` 3x3 convs after each of conv1 and conv2, at their resolution.
        self.mid1 = nn.ModuleList(sn(nn.Conv2d(ch, ch, 3, padding=1)) for _ in range(depth))
        self.mid2 = nn.ModuleList(sn(nn.Conv2d(2 * ch, 2 * ch, 3, padding=1)) for _ in range(depth))
        self.head = sn(nn.Linear((2 * ch + (mbstd > 0)) * 7 * 7, 1))
        self.embed = None
        if num_classes > 0:
            embed = nn.Embedding(num_classes, 2 * ch)
            nn.init.xavier_uniform_(embed.weight)  # small: the projection starts as a nudge
            self.embed = sn(embed)
        heads = classifier and num_classes
        self.classifier = sn(nn.Linear(2 * ch, num_classes)) if heads else None
        self.twin = sn(nn.Linear(2 * ch, num_classes)) if heads and twin else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, *,
                classes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N,); with `classes=True` also the class logits (N, num_classes), or
        (N, 2, num_classes) with a twin head: [:, 0] the real-trained head, [:, 1] the twin."""
        h = nn.functional.leaky_relu(self.conv1(x), 0.2)
        for conv in self.mid1:
            h = nn.functional.leaky_relu(conv(h), 0.2)
        h = nn.functional.leaky_relu(self.conv2(h), 0.2)  # (N, 2ch, 7, 7)
        for conv in self.mid2:
            h = nn.functional.leaky_relu(conv(h), 0.2)
        stats = minibatch_std(h, self.mbstd) if self.mbstd else h
        out = self.head(stats.flatten(1)).squeeze(1)  # (N,)
        pooled = h.sum((2, 3))  # (N, 2ch), global sum pooling as in the projection paper
        if self.embed is not None:
            out = out + (self.embed(labels) * pooled).sum(1)  # projection term
        if not classes:
            return out
        if self.classifier is None:
            raise ValueError("this discriminator has no class head (model.aux_classifier)")
        if self.twin is None:
            return out, self.classifier(pooled)
        return out, torch.stack([self.classifier(pooled), self.twin(pooled)], 1)
