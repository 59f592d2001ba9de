"""Losses of the paper (eqs. 1-4): class weights, W-MSE, W-CCE and their combination.

All functions are pure jnp. Labels are class indices ``0..C-1`` (the data pipeline maps the layout's
label values, e.g. BraTS 0/1/2/4, onto indices).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def class_frequency_ratios(voxel_counts: np.ndarray) -> np.ndarray:
  """``sum_k m_k / m_l`` per class from the training set's label voxel counts ``m: [C]``.

  A class absent from the training set gets ratio 0 (its weight is then 1), never a division by 0.
  """
  m = np.asarray(voxel_counts, np.float64)
  return np.where(m > 0, m.sum() / np.maximum(m, 1), 0.0).astype(np.float32)


def class_weights(ratios: Array, rep: float, decay_rate: float, epoch: Array | int) -> Array:
  """Eq. 3 with the per-epoch decay: ``w_l = ratios_l * rep * decay_rate**epoch + 1``.

  Args:
    ratios: ``[C]`` from `class_frequency_ratios`.
    rep: the paper's ``rep`` factor.
    decay_rate: ``r in [0, 1]``; the weights converge to 1 as the epoch grows.
    epoch: the (0-based) epoch, a Python or traced integer.

  Returns:
    ``[C] float32`` class weights.
  """
  return ratios * rep * jnp.power(decay_rate, jnp.asarray(epoch, jnp.float32)) + 1.0


def weighted_mse(prediction: Array, target: Array, labels: Array, weights: Array,
                 mask: Array | None = None) -> Array:
  """W-MSE (eq. 2), averaged over voxels and batch.

  Args:
    prediction, target: ``[B, D, H, W]`` (or with a trailing channel of 1).
    labels: ``[B, D, H, W] int`` class index of each voxel; its weight ``w_l`` weights the voxel.
    weights: ``[C]`` class weights.
    mask: optional ``[B, D, H, W]`` 1 for real voxels, 0 for padding.

  Returns:
    scalar: ``sum_n w_n (x_n - x_hat_n)**2 / N`` (the paper's sum divided by the voxel count, so the
    loss does not grow with the volume size).
  """
  err = (prediction.reshape(labels.shape) - target.reshape(labels.shape))**2
  return _masked_mean(weights[labels] * err, mask)


def weighted_cce(logits: Array, labels: Array, weights: Array, mask: Array | None = None) -> Array:
  """W-CCE (eq. 1), averaged over voxels and batch.

  Args:
    logits: ``[B, D, H, W, C]``.
    labels: ``[B, D, H, W] int``.
    weights: ``[C]`` class weights.
    mask: optional ``[B, D, H, W]`` 1 for real voxels.

  Returns:
    scalar ``-sum_l w_l sum_n y_nl log p_nl / N``.
  """
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
  return _masked_mean(weights[labels] * nll, mask)


def soft_dice(logits: Array, labels: Array, mask: Array | None = None,
              smooth: float = 1e-5) -> Array:
  """Soft Dice loss, ``1 - mean over batch and classes of (2 sum p y + s) / (sum p + sum y + s)``
  over the (masked) voxels of each example, as MONAI's ``DiceLoss(softmax=True)`` with background
  included; a class absent from an example and not predicted there scores 1.

  Args:
    logits: ``[B, D, H, W, C]``.
    labels: ``[B, D, H, W] int``.
    mask: optional ``[B, D, H, W]`` 1 for the voxels that count.

  Returns:
    scalar in ``[0, 1]``.
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  y = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  if mask is not None:
    m = mask.reshape(labels.shape + (1,)).astype(jnp.float32)
    p, y = p * m, y * m
  axes = tuple(range(1, labels.ndim))
  intersection = jnp.sum(p * y, axis=axes)
  dice = (2 * intersection + smooth) / (jnp.sum(p, axis=axes) + jnp.sum(y, axis=axes) + smooth)
  return 1.0 - jnp.mean(dice)


def _masked_mean(x: Array, mask: Array | None) -> Array:
  if mask is None:
    return jnp.mean(x)
  mask = mask.reshape(x.shape).astype(x.dtype)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def rsnet_loss(outputs: dict[str, Array], target: Array | None, labels: Array, weights: Array,
               lambda_synthesis: float, lambda_segmentation: float,
               mask: Array | None = None,
               lambda_dice: float = 0.0) -> tuple[Array, dict[str, Array]]:
  """Eq. 4: ``L = lambda1 * W-MSE + lambda2 * W-CCE`` over whichever heads ``outputs`` has, plus
  ``lambda_dice * soft_dice`` on the logits where ``lambda_dice > 0`` (not the paper's).

  Returns:
    ``(loss, {'loss', 'wmse', 'wcce'[, 'dice']})``: the parts that exist for the model's variant.
  """
  parts = {}
  loss = jnp.zeros((), jnp.float32)
  if 'synthesis' in outputs:
    parts['wmse'] = weighted_mse(outputs['synthesis'], target, labels, weights, mask)
    loss = loss + lambda_synthesis * parts['wmse']
  if 'logits' in outputs:
    parts['wcce'] = weighted_cce(outputs['logits'], labels, weights, mask)
    loss = loss + lambda_segmentation * parts['wcce']
    if lambda_dice:
      parts['dice'] = soft_dice(outputs['logits'], labels, mask)
      loss = loss + lambda_dice * parts['dice']
  parts['loss'] = loss
  return loss, parts
