"""The seed tutorial's generator and discriminator, layer for layer.

Parameter names, shapes and order match the tutorial's `generator(100, 3136)` and
`discriminator()` exactly (G 328,764 parameters, D 3,265,409), so a state dict moves between
them with `strict=True` in both directions. One change, which has no parameters: the
discriminator ends at its last Linear and returns logits; the tutorial's final `nn.Sigmoid()` is
folded into the loss (BCE-with-logits), the same mathematics without sigmoid's saturation.
"""

from __future__ import annotations

import torch
from torch import nn


class SeedGenerator(nn.Module):
    """z [N, z_dim] -> FC to 1x56x56 -> BN+ReLU -> 3x3 convs 50, 25 -> 2x2 stride-2 conv -> tanh."""

    num_classes = 0

    def __init__(self, z_dim: int = 100, num_feature: int = 3136):
        super().__init__()
        self.z_dim = z_dim
        self.fc = nn.Linear(z_dim, num_feature)  # (N, 3136) = 1x56x56
        self.br = nn.Sequential(nn.BatchNorm2d(1), nn.ReLU(True))
        self.downsample1 = nn.Sequential(
            nn.Conv2d(1, 50, 3, stride=1, padding=1),  # (N, 50, 56, 56)
            nn.BatchNorm2d(50),
            nn.ReLU(True),
        )
        self.downsample2 = nn.Sequential(
            nn.Conv2d(50, 25, 3, stride=1, padding=1),  # (N, 25, 56, 56)
            nn.BatchNorm2d(25),
            nn.ReLU(True),
        )
        self.downsample3 = nn.Sequential(
            nn.Conv2d(25, 1, 2, stride=2),  # (N, 1, 28, 28)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.fc(z).view(z.size(0), 1, 56, 56)  # (N, 1, 56, 56)
        x = self.br(x)
        x = self.downsample1(x)  # (N, 50, 56, 56)
        x = self.downsample2(x)  # (N, 25, 56, 56)
        return self.downsample3(x)  # (N, 1, 28, 28) in [-1, 1]


class SeedDiscriminator(nn.Module):
    """x [N, 1, 28, 28] -> 5x5 convs 32, 64 with LeakyReLU 0.2 and 2x2 average pooling ->
    FC 1024 -> logit."""

    num_classes = 0

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),  # (N, 32, 28, 28)
            nn.LeakyReLU(0.2, True),
            nn.AvgPool2d(2, stride=2),  # (N, 32, 14, 14)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(32, 64, 5, padding=2),  # (N, 64, 14, 14)
            nn.LeakyReLU(0.2, True),
            nn.AvgPool2d(2, stride=2),  # (N, 64, 7, 7)
        )
        self.fc = nn.Sequential(
            nn.Linear(64 * 7 * 7, 1024),
            nn.LeakyReLU(0.2, True),
            nn.Linear(1024, 1),  # the tutorial's nn.Sigmoid() follows here; see module docstring
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv2(self.conv1(x))  # (N, 64, 7, 7)
        return self.fc(x.flatten(1)).squeeze(1)  # (N,) logits
