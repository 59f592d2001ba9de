"""A PyTorch twin of rsnet_jax's RS-Net, for benchmarks only (torch is never a package dependency).

Same layers, same order, same parameter count as `rsnet_jax.model.models.RSNet` (checked by
`bench/train_step.py`): 3x3x3 'same' convs, 2x2x2 max-pool, instance norm without affine parameters,
dropout, 5x5x5 stride-2 transposed convs, the regression head fed the complementary volume. Layout
NCDHW (PyTorch's native one); the loss is the same weighted MSE + weighted cross-entropy and the
optimizer the same Adam.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def _conv3(cin: int, cout: int) -> nn.Conv3d:
  return nn.Conv3d(cin, cout, 3, padding=1)


class UNet3D(nn.Module):

  def __init__(self, in_channels: int, k: int = 4, levels: int = 4, dropout: float = 0.1):
    super().__init__()
    self.levels = levels
    self.start = nn.ModuleList([_conv3(in_channels, k), _conv3(k, k)])
    self.encoders = nn.ModuleList()
    ch = k
    for n in range(1, levels + 1):
      f = k * 2**n
      self.encoders.append(nn.ModuleList([_conv3(ch, f), _conv3(f, f)]))
      ch = f
    self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
    for n in reversed(range(levels)):
      f = k * 2**n
      # 'SAME' stride-2 transposed conv of a 5x5x5 kernel: output exactly twice the input
      self.ups.append(nn.ConvTranspose3d(ch, f, 5, stride=2, padding=2, output_padding=1))
      self.decoders.append(nn.ModuleList([_conv3(2 * f, f), _conv3(f, f)]))
      ch = f
    self.dropout = nn.Dropout(dropout)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.start[1](F.relu(self.start[0](x))))
    skips = [x]
    for conv0, conv1 in self.encoders:
      x = F.relu(conv1(F.relu(conv0(x))))
      x = self.dropout(F.instance_norm(F.max_pool3d(x, 2)))
      skips.append(x)
    for i, (up, (conv0, conv1)) in enumerate(zip(self.ups, self.decoders)):
      n = self.levels - 1 - i
      x = torch.cat([F.relu(up(x)), skips[n]], dim=1)
      x = self.dropout(F.instance_norm(x))
      x = F.relu(conv1(F.relu(conv0(x))))
    return x


class Head(nn.Sequential):

  def __init__(self, cin: int, k: int, out: int):
    super().__init__(_conv3(cin, 4 * k), nn.ReLU(), nn.Conv3d(4 * k, 2 * k, 1), nn.ReLU(),
                     nn.Conv3d(2 * k, k, 1), nn.ReLU(), nn.Conv3d(k, out, 1))


class RSNet(nn.Module):
  """``(inputs [B, Cin, D, H, W], complementary [B, 1, D, H, W]) -> (synthesis [B, 1, ...],
  logits [B, classes, ...])``."""

  def __init__(self, in_channels: int = 3, k: int = 4, levels: int = 4, classes: int = 4,
               dropout: float = 0.1):
    super().__init__()
    self.unet = UNet3D(in_channels, k, levels, dropout)
    self.regression = Head(k + 1, k, 1)
    self.segmentation = Head(k, k, classes)

  def forward(self, inputs, complementary):
    features = self.unet(inputs)
    return (self.regression(torch.cat([features, complementary], dim=1)),
            self.segmentation(features))


def loss_fn(synthesis, logits, target, labels, weights, lambda_synthesis=1.0,
            lambda_segmentation=0.1):
  """Eq. 4 as `rsnet_jax.model.losses.rsnet_loss` computes it: means of class-weighted squared errors
  and cross-entropies."""
  w = weights[labels]  # [B, D, H, W]
  wmse = (w * (synthesis[:, 0] - target[:, 0])**2).mean()
  wcce = (w * F.cross_entropy(logits, labels, reduction='none')).mean()
  return lambda_synthesis * wmse + lambda_segmentation * wcce


def parameter_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())
