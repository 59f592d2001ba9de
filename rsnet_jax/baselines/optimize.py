"""Adam on minibatches drawn from arrays held in memory: how the LSDN and the 2D CNN are trained."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

Array = jax.Array


def output_bias(params: dict, layer: str, value: float) -> dict:
  """``params`` with the bias of the output ``layer`` set to ``value`` (the training targets' mean
  in the brain): the fit starts from the brain-mean prediction instead of spending its first
  hundreds of Adam steps (~``learning_rate`` each) walking the bias there."""
  inner = dict(params['params'])
  inner[layer] = {**inner[layer], 'bias': jnp.full_like(inner[layer]['bias'], value)}
  return {**params, 'params': inner}


def fit(loss_fn: Callable[..., Array], params, data: tuple[np.ndarray, ...], steps: int,
        batch_size: int, learning_rate: float, key: Array, desc: str = 'fit'):
  """``params`` after ``steps`` Adam steps (cosine-decayed ``learning_rate``) on
  ``loss_fn(params, *batch)``; batch ``s`` holds rows ``randint(fold_in(key, s))`` of each array of
  ``data`` (all with the same first axis): the same key, the same batches and parameters."""
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  arrays = tuple(jnp.asarray(a) for a in data)
  rows = arrays[0].shape[0]

  @jax.jit
  def step(params, opt_state, index):
    pick = jax.random.randint(jax.random.fold_in(key, index), (batch_size,), 0, rows)
    loss, grads = jax.value_and_grad(loss_fn)(params, *(a[pick] for a in arrays))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = optimizer.init(params)
  progress = tqdm.trange(steps, desc=desc, unit='step', mininterval=5)
  for s in progress:
    params, opt_state, loss = step(params, opt_state, s)
    if s % 100 == 0 or s == steps - 1:
      progress.set_postfix(loss=f'{float(loss):.4f}')
  return params
