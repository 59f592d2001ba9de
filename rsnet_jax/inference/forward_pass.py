"""The network's forward pass over a batch: deterministic, or MC dropout (paper Sec. II) with its
mean, variance and segmentation uncertainty (`forward`), and that pass jitted per input shape in
MC chunks that fit the memory budget (`MCForward`)."""

from __future__ import annotations

import functools
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from rsnet_jax.errors import UserError
from rsnet_jax.inference import uncertainty
from rsnet_jax.runtime import compile_options
from rsnet_jax.runtime import memory

Array = jax.Array


def ensemble_size(config: ml_collections.ConfigDict) -> int:
  """``model.ensemble_size``, checked: the members, their parameters stacked on a leading axis."""
  members = config.model.get('ensemble_size', 1)
  if not isinstance(members, int) or members < 1:
    raise UserError(f'model.ensemble_size must be a whole number >= 1, got {members!r}')
  return members


def over_members(fn: Callable, *stacked):
  """``fn`` applied to each member's slice of ``stacked`` (leading member axis), results stacked.

  Vmapped on a GPU or TPU; on the CPU unrolled, one member after another in the same program:
  XLA:CPU runs a vmapped step of 2 members 9.5x slower than one member, and a ``lax.map`` of them
  15x slower, where the unrolled members cost 2x (bench/README.md, "Deep ensembles")."""
  if jax.default_backend() == 'cpu':
    count = jax.tree.leaves(stacked)[0].shape[0]
    results = [fn(*jax.tree.map(lambda a, k=k: a[k], stacked)) for k in range(count)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *results)
  return jax.vmap(fn)(*stacked)


def pool_members(outputs: dict[str, Array]) -> dict[str, Array]:
  """Outputs of K ensemble members stacked on axis 0 -> one prediction: every member (and each of
  its MC samples) an equally weighted sample. The synthesis' mean and its variance (the members'
  MC variance plus the spread of their means), the mean softmax, its entropy ``H[E p]`` and the
  mutual information ``H[E p] - E H[p]`` (a member's ``E H[p]``: its entropy minus its mutual
  information, or the entropy of its softmax without MC samples)."""
  pooled = {}
  if 'synthesis' in outputs:
    means = outputs['synthesis']
    pooled['synthesis'] = jnp.mean(means, 0)
    within = jnp.mean(outputs['synthesis_variance'], 0) if 'synthesis_variance' in outputs else 0.0
    pooled['synthesis_variance'] = within + jnp.var(means, 0)
  if 'probabilities' in outputs:
    probabilities = outputs['probabilities']
    pooled['probabilities'] = jnp.mean(probabilities, 0)
    predictive = uncertainty.entropy(pooled['probabilities'])
    if 'entropy' in outputs:
      expected = jnp.mean(outputs['entropy'] - outputs['mutual_information'], 0)
    else:
      expected = jnp.mean(uncertainty.entropy(probabilities), 0)
    pooled['entropy'] = predictive
    pooled['mutual_information'] = jnp.maximum(predictive - expected, 0.0)
  return pooled


def forward(params, batch: dict[str, Array], keys: Array | None, *, apply_fn, num_mc_samples: int,
            mc_chunk_size: int | None = None, share_prefix: bool = True,
            members: int = 1) -> dict[str, Array]:
  """Deterministic (``num_mc_samples == 0``) or MC-dropout prediction for ``batch``; with
  ``members > 1``, of a deep ensemble whose parameters are stacked on a leading axis, pooled by
  `pool_members` (member ``k`` draws its MC samples from ``fold_in(keys[i], k)``).

  Args:
    batch: ``inputs [B, D, H, W, C_in]`` (and ``complementary [B, D, H, W, 1]``).
    keys: ``[B]`` MC keys, one per example (unused without MC dropout). Example ``i``'s samples
      depend only on its own inputs and ``keys[i]``, never on what else is in the batch.
    share_prefix: run the layers before the first dropout once for all MC samples.

  Returns, for the heads the model has: ``synthesis [B, D, H, W, 1]`` (the MC mean),
  ``probabilities [B, D, H, W, C]`` (mean softmax) and, with MC dropout, ``synthesis_variance``
  ``[B, D, H, W, 1]`` (intensity units squared), ``entropy`` and ``mutual_information``
  ``[B, D, H, W]`` (nats).
  """
  if members > 1:
    def member(member_params, k):
      member_keys = None if keys is None else jax.vmap(lambda key: jax.random.fold_in(key, k))(keys)
      return forward(member_params, batch, member_keys, apply_fn=apply_fn,
                     num_mc_samples=num_mc_samples, mc_chunk_size=mc_chunk_size,
                     share_prefix=share_prefix)
    return pool_members(over_members(member, params, jnp.arange(members)))

  def once(x, k, train, prefix=None):
    out = apply_fn({'params': params}, x['inputs'], x.get('complementary'), train=train,
                   rngs={'dropout': k} if train else {}, prefix=prefix)
    if 'logits' in out:
      out['probabilities'] = uncertainty.softmax(out.pop('logits'))
    return out

  if num_mc_samples == 0:
    return once(batch, None, False)

  def one_example(example, key):
    x = jax.tree.map(lambda a: a[None], example)
    prefix = (apply_fn({'params': params}, x['inputs'], method='prefix') if share_prefix
              else None)

    def sample(k):
      out = once(x, k, True, prefix)
      if 'probabilities' in out:
        out['sample_entropy'] = uncertainty.entropy(out['probabilities'])
      return out

    stats = uncertainty.mc_dropout(sample, key, num_mc_samples, mc_chunk_size,
                                   variance_of=('synthesis',))
    result = dict(stats['mean'])
    if 'synthesis' in result:
      result['synthesis_variance'] = stats['variance']['synthesis']
    if 'probabilities' in result:
      result.update(uncertainty.segmentation_uncertainty(result['probabilities'],
                                                         result.pop('sample_entropy')))
    return jax.tree.map(lambda a: a[0], result)

  inputs = {k: v for k, v in batch.items() if k in ('inputs', 'complementary')}
  return jax.vmap(one_example)(inputs, keys)


class MCForward:
  """`forward` jitted for ``num_mc_samples`` samples, compiled once per input shape with
  ``mc_chunk_size`` (an int, 0 = all at once) or, for ``'auto'``, the largest of
  `memory.chunk_candidates` whose plan fits `memory.budget`. Call as the jitted ``forward``:
  ``fn(params, batch, keys)``; ``chunk_sizes`` maps input shapes to the chunk used."""

  def __init__(self, config: ml_collections.ConfigDict, apply_fn: Callable,
               num_mc_samples: int):
    self._config, self._n = config, num_mc_samples
    self._forward = functools.partial(forward, apply_fn=apply_fn, num_mc_samples=num_mc_samples,
                                      members=ensemble_size(config))
    self._compiled: dict[Any, Any] = {}
    self.chunk_sizes: dict[Any, int] = {}
    self.plans: dict[Any, int] = {}  # input shapes -> XLA's memory plan of the compiled pass, bytes

  def _compile(self, chunk: int | None, *args):
    return jax.jit(functools.partial(self._forward, mc_chunk_size=chunk),
                   compiler_options=compile_options.for_backend()).lower(*args).compile()

  def __call__(self, params, batch, keys):
    shapes = jax.tree.map(lambda a: a.shape, batch)
    key = str(shapes)
    if key not in self._compiled:
      setting = self._config.predict.get('mc_chunk_size', 0)
      if self._n == 0:  # deterministic: no samples to chunk
        chunk = 0
        self._compiled[key] = self._compile(None, params, batch, keys)
      elif setting != 'auto':
        try:
          chunk = min(int(setting or 0) or self._n, self._n)
        except ValueError:
          raise UserError("predict.mc_chunk_size must be 'auto' or a number of samples (0 = all),"
                          f' got {setting!r}') from None
        self._compiled[key] = self._compile(chunk, params, batch, keys)
      else:
        have, source = memory.budget(self._config)
        for chunk in memory.chunk_candidates(self._n):
          compiled = self._compile(chunk, params, batch, keys)
          if memory.plan(compiled) <= have:
            break
        else:
          raise UserError(
              f'MC-dropout prediction of a {shapes["inputs"][1:4]} volume plans '
              f'{memory.plan(compiled) / memory.GIB:.1f} GiB even one sample at a time, more '
              f'than the {have / memory.GIB:.1f} GiB budget ({source}); lower it with '
              "predict.window_shape (sliding windows), model.dtype='bfloat16' or model.remat, "
              'or set memory_budget_gib')
        logging.info('MC chunk size %d of %d samples for %s volumes: plans %.2f GiB of %.1f GiB '
                     '(%s)', chunk, self._n, shapes['inputs'][1:4],
                     memory.plan(compiled) / memory.GIB, have / memory.GIB, source)
        self._compiled[key] = compiled
      if self._n:
        self.chunk_sizes[key] = chunk
      self.plans[key] = memory.plan(self._compiled[key])
    return self._compiled[key](params, batch, keys)
