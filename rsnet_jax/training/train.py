"""Training: TrainState, jitted train/eval steps, and the train-and-evaluate loop.

``train_step(state, batch, key) -> (state, metrics)`` is pure: the dropout key of a step is
``fold_in(key, state.step)`` and the class weights are those of epoch ``state.step // steps_per_epoch``,
and the batch of step ``s`` is element ``s`` of the seeded dataset, so a resumed run computes exactly
what an uninterrupted one would, bit for bit. SIGTERM/SIGINT save a checkpoint after the current step
(`resilience.Preempted`); a non-finite loss or gradient stops training or skips the update
(``train.nonfinite``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time
from typing import Any

from absl import logging
from clu import metrics as clu_metrics
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from rsnet_jax.data import anyseq
from rsnet_jax.data import grid
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import evaluate
from rsnet_jax.evaluation import report
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.inference import uncertainty
from rsnet_jax.model import losses
from rsnet_jax.model import models
from rsnet_jax.runtime import compile_options
from rsnet_jax.runtime import files
from rsnet_jax.runtime import memory
from rsnet_jax.runtime import parallel
from rsnet_jax.runtime import resilience
from rsnet_jax.training import checkpoints
from rsnet_jax.training import summary_writer

Array = jax.Array
TrainState = train_state.TrainState


def create_model(config: ml_collections.ConfigDict) -> models.RSNet:
  m = config.model
  variant = 'rsnet' if m.variant == 'anyseq' else m.variant  # the same network, other inputs
  return models.RSNet(variant=variant, base_filters=m.base_filters, num_levels=m.num_levels,
                      num_classes=m.num_classes, dropout_rate=m.dropout_rate,
                      instance_norm_affine=m.instance_norm_affine, remat=m.get('remat', 'none'),
                      dtype=jnp.dtype(m.get('dtype', 'float32')),
                      conv_impl=m.get('conv_impl', 'auto'), activation=m.get('activation', 'relu'),
                      norm=m.get('norm', 'paper'), filters=tuple(m.get('filters', ())),
                      upsample_kernel=m.get('upsample_kernel', 5),
                      pool_first=m.get('pool_first', False),
                      segmentation_head=m.get('segmentation_head', 'paper'),
                      regression_head=m.get('regression_head', 'paper'))


def learning_rate_schedule(config: ml_collections.ConfigDict, learning_rate: float,
                           num_steps: int) -> float | optax.Schedule:
  """``learning_rate`` (the paper's constant rate), or with ``optim.warmup_steps`` and/or
  ``optim.schedule == 'cosine'`` a linear warm-up from 0 and a cosine decay to
  ``optim.end_lr_fraction * learning_rate`` at step ``num_steps``."""
  o = config.optim
  warmup, schedule = o.get('warmup_steps', 0), o.get('schedule', 'constant')
  if schedule not in ('constant', 'cosine'):
    raise UserError(f"optim.schedule must be 'constant' or 'cosine', got {schedule!r}")
  if not warmup and schedule == 'constant':
    return learning_rate
  if schedule == 'constant':
    return optax.linear_schedule(0.0, learning_rate, warmup)
  return optax.warmup_cosine_decay_schedule(
      0.0, learning_rate, warmup, max(num_steps, warmup + 1),
      end_value=o.get('end_lr_fraction', 0.0) * learning_rate)


def create_train_state(config: ml_collections.ConfigDict, task: pipeline.Task,
                       key: Array, learning_rate: float | None = None,
                       num_steps: int = 1) -> TrainState:
  """Initialises parameters from ``key`` (shapes only depend on the channel counts) and Adam
  (``learning_rate``, default ``optim.learning_rate``, on `learning_rate_schedule` over
  ``num_steps``; the optimizer state's structure does not depend on ``num_steps``)."""
  model = create_model(config)
  params = _member_params(config, model, task, key)
  return _train_state(config, model, params, learning_rate, num_steps)


def _member_params(config: ml_collections.ConfigDict, model: models.RSNet, task: pipeline.Task,
                   key: Array) -> Any:
  """The network's parameters from ``key``; for a deep ensemble (``model.ensemble_size = K > 1``)
  K members' stacked on a leading axis, member ``k`` initialised from ``split(key, K)[k]``."""
  members = forward_pass.ensemble_size(config)
  init = functools.partial(_init_params, model, task.multiple, task.in_channels,
                           task.has_complementary)
  return init(key) if members == 1 else jax.vmap(init)(jax.random.split(key, members))


def abstract_train_state(config: ml_collections.ConfigDict, task: pipeline.Task) -> TrainState:
  """`create_train_state`'s structure, shapes and dtypes (``jax.ShapeDtypeStruct`` leaves), with
  nothing initialised or compiled: the target to restore a checkpoint into."""
  model = create_model(config)
  # Through the jitted initialiser, whose trace a process keeps: the network is traced once for
  # every abstract state, and for `create_train_state`, of the same shapes.
  params = _init_params.eval_shape(model, task.multiple, task.in_channels, task.has_complementary,
                                   jax.random.key(0))
  members = forward_pass.ensemble_size(config)
  if members > 1:  # stacked on a leading axis, as `_member_params` makes them
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct((members,) + a.shape, a.dtype), params)
  return jax.eval_shape(functools.partial(_train_state, config, model), params)


def _initial_params(model: models.RSNet, multiple: int, in_channels: int, complementary: bool,
                    key: Array) -> Any:
  size = (1,) + (multiple,) * 3
  inputs = jnp.zeros(size + (in_channels,))
  return model.init(key, inputs, jnp.zeros(size + (1,)) if complementary else None)['params']


# One program at XLA's lowest optimisation level: the initialisers' random-number code compiles in
# seconds (op by op, or at the default level, the demo's ~40 parameter shapes took 80-100 s on 2
# cores), and the parameters do not depend on the XLA_FLAGS of the run. Static in everything but the
# key, so a process compiles it once per network.
_init_params = jax.jit(_initial_params, static_argnums=(0, 1, 2, 3),
                       compiler_options={'xla_backend_optimization_level': 0})


def _train_state(config: ml_collections.ConfigDict, model: models.RSNet, params: Any,
                 learning_rate: float | None = None, num_steps: int = 1) -> TrainState:
  learning_rate = config.optim.learning_rate if learning_rate is None else learning_rate
  tx = optax.adam(learning_rate_schedule(config, learning_rate, num_steps), b1=config.optim.b1,
                  b2=config.optim.b2, eps=config.optim.eps)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


LOSS_REGIONS = ('volume', 'brain')


def loss_mask(batch: dict[str, Array], config: ml_collections.ConfigDict) -> Array:
  """``[B, D, H, W]``: 1 where eq. 4 counts a voxel: every real voxel (``loss.region = 'volume'``,
  the paper's) or only those inside the brain (``'brain'``: non-zero in some input)."""
  region = config.loss.get('region', 'volume')
  if region not in LOSS_REGIONS:
    raise UserError(f'loss.region must be one of {LOSS_REGIONS}, got {region!r}')
  return batch['valid'] * batch['brain'] if region == 'brain' else batch['valid']


def _loss(params, apply_fn, batch, weights, config, train, key=None):
  rngs = {'dropout': key} if train else {}
  outputs = apply_fn({'params': params}, batch['inputs'], batch.get('complementary'), train=train,
                     rngs=rngs)
  loss, parts = losses.rsnet_loss(outputs, batch.get('target'), batch['labels'], weights,
                                  config.loss.lambda_synthesis, config.loss.lambda_segmentation,
                                  loss_mask(batch, config), config.loss.get('lambda_dice', 0.0))
  return loss, (parts, outputs)


def train_step(state: TrainState, batch: dict[str, Array], key: Array, *,
               config: ml_collections.ConfigDict, class_ratios: Array,
               steps_per_epoch: int) -> tuple[TrainState, dict[str, Array]]:
  """One Adam step on ``batch`` with the decayed class weights of the current epoch.

  ``parts['finite']`` is 1.0 when the loss and every gradient are finite. Otherwise, with
  ``train.nonfinite == 'skip'`` the parameters and optimizer state are kept (the step count still
  advances, so the data order and dropout keys stay those of an uninterrupted run).
  """
  step_key = jax.random.fold_in(key, state.step)
  if config.model.variant == 'anyseq':  # each example's missing sequence, drawn for this step
    modalities = tuple(config.data.modalities)
    missing = anyseq.draw_missing(step_key, batch['inputs'].shape[0],
                                  anyseq.missing_probabilities(config, len(modalities)))
    batch = anyseq.mask(batch, missing, anyseq.complementary_indices(modalities))
  epoch = state.step // steps_per_epoch
  weights = losses.class_weights(class_ratios, config.loss.rep, config.loss.decay_rate, epoch)
  members = forward_pass.ensemble_size(config)
  if members == 1:
    grad_fn = jax.value_and_grad(_loss, has_aux=True)
    (loss, (parts, _)), grads = grad_fn(state.params, state.apply_fn, batch, weights, config, True,
                                        step_key)
  else:  # each member's own loss and dropout key fold_in(fold_in(key, k), step), in one step
    def ensemble_loss(params):
      def member(member_params, k):
        member_key = jax.random.fold_in(jax.random.fold_in(key, k), state.step)
        return _loss(member_params, state.apply_fn, batch, weights, config, True, member_key)
      member_losses, (member_parts, _) = forward_pass.over_members(member, params,
                                                                   jnp.arange(members))
      return member_losses.sum(), jax.tree.map(lambda a: a.mean(0), member_parts)
    (loss, parts), grads = jax.value_and_grad(ensemble_loss, has_aux=True)(state.params)
  finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  new_state = state.apply_gradients(grads=grads)
  if config.train.nonfinite == 'skip':
    kept = state.replace(step=new_state.step)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, kept)
  return new_state, dict(parts, finite=finite.astype(jnp.float32))


def sharded_train_step(config: ml_collections.ConfigDict, class_ratios: np.ndarray,
                       steps_per_epoch: int, mesh: jax.sharding.Mesh, donate: bool = True):
  """`train_step` jitted once for data parallelism over ``mesh``: ``(state, batch, key_data) ->
  (state, metrics)`` with the state replicated (and donated), the batch split along ``'data'`` and
  ``key_data = jax.random.key_data(key)`` replicated; metrics come back replicated."""

  def step(state, batch, key_data):
    return train_step(state, batch, jax.random.wrap_key_data(key_data), config=config,
                      class_ratios=class_ratios, steps_per_epoch=steps_per_epoch)

  replicated = parallel.replicated(mesh)
  return jax.jit(step, in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                 out_shardings=(replicated, replicated), donate_argnums=(0,) if donate else (),
                 compiler_options=compile_options.for_backend())


def eval_step(params: Any, batch: dict[str, Array], *, apply_fn, config: ml_collections.ConfigDict,
              num_classes: int) -> tuple[dict[str, Array], dict[str, Array]]:
  """Deterministic forward pass; unweighted losses (comparable across epochs) and outputs (an
  ensemble: the members' mean losses and their pooled prediction, `forward_pass.pool_members`)."""
  weights = jnp.ones((num_classes,), jnp.float32)
  if forward_pass.ensemble_size(config) == 1:
    _, (parts, outputs) = _loss(params, apply_fn, batch, weights, config, False)
    return parts, outputs
  _, (parts, outputs) = forward_pass.over_members(
      lambda p: _loss(p, apply_fn, batch, weights, config, False), params)
  if 'logits' in outputs:
    outputs['probabilities'] = uncertainty.softmax(outputs.pop('logits'))
  return jax.tree.map(lambda a: a.mean(0), parts), forward_pass.pool_members(outputs)


TrainMetrics = clu_metrics.Collection.create(
    loss=clu_metrics.Average.from_output('loss'),
    wmse=clu_metrics.Average.from_output('wmse'),
    wcce=clu_metrics.Average.from_output('wcce'),
    dice=clu_metrics.Average.from_output('dice'),  # nan unless loss.lambda_dice > 0
    nonfinite=clu_metrics.Average.from_output('nonfinite'))


def write_summary(workdir: str, params: Any, config: ml_collections.ConfigDict) -> str:
  """Prints and writes ``WORKDIR/model_summary.txt``: parameters per block and in total."""
  counts = models.summarize(params)
  lines = [f'{config.model.variant}: k={config.model.base_filters}, '
           f'{config.model.num_levels} levels, {config.model.num_classes} classes']
  lines += [f'  {name:<16s}{n:>10,d}' for name, n in counts.items() if name != 'total']
  lines.append(f'  {"total":<16s}{counts["total"]:>10,d}')
  text = '\n'.join(lines) + '\n'
  files.write_text(os.path.join(workdir, 'model_summary.txt'), text)
  print(text, end='')
  return text


def evaluate_loss(step, params, cases, task) -> tuple[dict[str, float], Any]:
  """Validation over ``cases`` with ``step`` (a jitted `eval_step`, made once per run so that
  evaluations do not recompile it): the mean unweighted losses and the mean of `evaluate.score`'s
  cheap figures (PSNR/SSIM of the synthesis, Dice WT/TC/ET; NaN cases left out), all named
  ``val_*``; also returns the first case's example, outputs and task (for ``anyseq``: with the
  target that case was scored on)."""
  totals, scores, first = {}, {}, None
  for example, shown in map(lambda c: held_out_example(c, task), cases):
    batch = jax.tree.map(lambda a: a[None], example)
    parts, outputs = step(params, batch)
    for name, value in parts.items():
      totals[name] = totals.get(name, 0.0) + float(value) / len(cases)
    outputs = _as_predicted(outputs, example)
    for name, value in evaluate.score(example, outputs).items():
      scores.setdefault(name, []).append(value)
    if first is None:
      first = (example, outputs, shown)
  totals.update({k: float(np.nanmean(v)) if not np.isnan(v).all() else float('nan')
                 for k, v in scores.items()})
  return {f'val_{k}': v for k, v in totals.items()}, first


def held_out_example(case, task: pipeline.Task) -> tuple[dict[str, np.ndarray], pipeline.Task]:
  """A validation or test case as it is scored, and the task it is scored on: for ``anyseq``
  without its `anyseq.fixed_missing` sequence, which is then the task's target."""
  if task.variant != 'anyseq':
    return pipeline.load_case(case, task)[0], task
  missing = task.inputs[anyseq.fixed_missing(case.case_id, len(task.inputs))]
  return anyseq.load_case(case, task, missing)[0], dataclasses.replace(task, target=missing)


def _as_predicted(outputs: dict[str, Array], example: dict[str, np.ndarray]):
  """A validation example's outputs as `predict` writes them (softmax, outside the brain masked)."""
  outputs = {k: np.asarray(v[0]) for k, v in outputs.items()}
  if 'logits' in outputs:
    outputs['probabilities'] = np.asarray(uncertainty.softmax(outputs.pop('logits')))
  return predict.outside_brain_as_background(outputs, example['brain'])


def checkpoint_bytes(config: ml_collections.ConfigDict, task: pipeline.Task) -> int:
  """Bytes of one checkpoint (parameters and optimizer state), from shapes only: nothing runs."""
  shapes = abstract_train_state(config, task)
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes)
             if hasattr(x, 'dtype'))


def preflight(config: ml_collections.ConfigDict, workdir: str, task: pipeline.Task) -> None:
  """Refuses, before anything is compiled or written, a workdir that is not writable or lacks room
  for ``train.min_free_disk_factor`` checkpoints."""
  resilience.check_workdir(workdir)
  resilience.check_free_disk(workdir, checkpoint_bytes(config, task),
                             config.train.min_free_disk_factor)


def _refuse_changed_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  differences = resilience.config_differences(saved, config)
  if differences:
    raise UserError([f'{path}: the run being resumed had another config; use a new --workdir or '
                     'change back:'] + [f'  {d}' for d in differences])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       splits: dict[str, list] | None = None) -> TrainState:
  """Trains on the train split (resuming from WORKDIR/checkpoints), evaluating on the val split.

  ``splits`` (from `pipeline.dataset_splits`) is computed from the config when not given.

  Raises:
    resilience.Preempted: on SIGTERM/SIGINT, after the current step and a checkpoint.
    resilience.Diverged: on a non-finite loss or gradient (``train.nonfinite == 'stop'``).
    UserError: no room for a checkpoint; resuming with a changed config.
  """
  task = pipeline.Task.from_config(config)
  preflight(config, workdir, task)
  if task.variant == 'anyseq':
    anyseq.missing_probabilities(config, len(task.inputs))  # refused before anything runs
  manager = checkpoints.checkpoint_manager(workdir, config)
  start_step = manager.latest_step() or 0
  if start_step:
    _refuse_changed_config(workdir, config)
  splits = splits or pipeline.dataset_splits(config, workdir, task)
  train_cases, val_cases = splits['train'], splits['val']
  task = grid.record(config, workdir, task, train_cases)  # the grid every case is read on
  logging.info('cases: %d train, %d val, %d test', len(train_cases), len(val_cases),
               len(splits['test']))

  counts = pipeline.label_voxel_counts(train_cases, config.model.num_classes)
  class_ratios = losses.class_frequency_ratios(counts)
  batch_size = parallel.global_batch_size(config.train.batch_size)
  steps_per_epoch = len(train_cases) // batch_size
  if steps_per_epoch == 0:
    raise UserError(f'{len(train_cases)} training cases < the global batch {batch_size} '
                    f'(train.batch_size {config.train.batch_size} x {jax.device_count()} devices)')
  learning_rate = parallel.scaled_learning_rate(
      config.optim.learning_rate, config.optim.lr_scaling, batch_size, config.optim.base_batch_size)
  logging.info('global batch %d (%d per device, %d devices, %d processes), learning rate %g',
               batch_size, config.train.batch_size, jax.device_count(), jax.process_count(),
               learning_rate)
  mesh = parallel.data_mesh()
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  num_steps = steps_per_epoch * config.train.num_epochs
  state = create_train_state(config, task, init_key, learning_rate, num_steps)
  if parallel.is_primary():
    write_summary(workdir, state.params, config)
    files.write_json(os.path.join(workdir, 'config.json'), resilience.config_record(config))
  state = parallel.replicate(state, mesh)
  key_data = parallel.replicate(jax.random.key_data(dropout_key), mesh)

  if start_step:
    state, start_step = checkpoints.restore_checkpoint(manager, state, 'latest')
    logging.info('resumed from step %d', start_step)

  order = pipeline.case_order(train_cases, config.train.num_epochs, config.seed)
  dataset = pipeline.train_dataset(train_cases, task, batch_size, config.train.num_epochs,
                                   seed=config.seed,
                                   shard=(jax.process_index(), jax.process_count()), config=config)
  batches = pipeline.to_iterator(dataset[start_step:], config.data.worker_count)
  step_fn = sharded_train_step(config, class_ratios, steps_per_epoch, mesh,
                               config.train.get('donate_state', True))
  if start_step < num_steps:  # a step that cannot fit is refused before it runs
    first = next(batches)
    batches = itertools.chain([first], batches)
    memory.check_fits(step_fn.lower(state, parallel.global_batch(first, mesh), key_data).compile(),
                      config, 'a training step', "model.remat='levels', model.dtype='bfloat16' or "
                      'a smaller data.crop_shape')
  val_step = jax.jit(functools.partial(eval_step, apply_fn=state.apply_fn, config=config,
                                       num_classes=config.model.num_classes),
                     compiler_options=compile_options.for_backend())

  writer = summary_writer.SummaryWriter(workdir, just_logging=not parallel.is_primary())
  writer.write_hparams(resilience.flatten(config.to_dict()))
  writer.write_texts(start_step, {'config': '```\n' + str(config) + '\n```'})
  profile = _Profile(workdir, start_step, config.train.get('profile_steps', 0))
  eval_every = steps_per_epoch * config.train.eval_every_epochs
  every = config.train.checkpoint_every_steps
  save = lambda step, metrics=None: manager.save(
      step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), metrics=metrics)
  train_metrics, last_log = None, (start_step, time.perf_counter())
  bar = tqdm.tqdm(total=num_steps, initial=start_step, desc='train', unit='step',
                  disable=not parallel.is_primary() or None)  # None: off when not a terminal
  with bar, resilience.stop_requests() as stop:
    for step in range(start_step, num_steps):
      batch = parallel.global_batch(next(batches), mesh)
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        state, parts = step_fn(state, batch, key_data)
      parts = jax.device_get(parts)
      if config.train.nonfinite == 'stop' and not bool(parts['finite']):
        cases = [order[step * batch_size + i].case_id for i in range(batch_size)]
        manager.wait_until_finished()
        writer.flush()
        last = manager.latest_step()
        raise resilience.Diverged(
            f'non-finite loss or gradient at step {step + 1} (case {", ".join(cases)}); stopped '
            'without saving it, ' + (f'the last good checkpoint is step {last}' if last else
                                     'no checkpoint saved yet') +
            "; lower optim.learning_rate or set train.nonfinite='skip'")
      update = TrainMetrics.single_from_model_output(
          **{k: parts.get(k, jnp.nan) for k in ('loss', 'wmse', 'wcce', 'dice')},
          nonfinite=1.0 - parts['finite'])
      train_metrics = update if train_metrics is None else train_metrics.merge(update)
      profile(step + 1)
      bar.update()
      if (step + 1) % config.train.log_every_steps == 0 or step + 1 == num_steps:
        scalars = train_metrics.compute()
        bar.set_postfix(loss=f'{scalars["loss"]:.4f}', refresh=False)
        now = time.perf_counter()
        writer.write_scalars(step + 1, {**{f'train_{k}': v for k, v in scalars.items()
                                           if k != 'dice' or np.isfinite(v)},
                                        'steps_per_sec': (step + 1 - last_log[0]) /
                                                         (now - last_log[1])})
        last_log = (step + 1, now)
        if scalars['nonfinite'] > 0:
          logging.warning('steps %d..%d: %.0f%% of the updates skipped (non-finite)',
                          step + 2 - config.train.log_every_steps, step + 1,
                          100 * scalars['nonfinite'])
        train_metrics = None
      stopping = _any_process(bool(stop))  # all processes stop after the same step
      if (step + 1) % eval_every == 0 or step + 1 == num_steps:
        val, first = evaluate_loss(val_step, jax.device_get(state.params), val_cases, task)
        writer.write_scalars(step + 1, val)
        if first is not None and parallel.is_primary():
          path = os.path.join(workdir, 'montages', f'step_{step + 1:06d}.png')
          report.montage(first[0], first[1], first[2], path, title=f'step {step + 1}')
          writer.write_images(step + 1, {'val_montage': report.read_png(path)[None]})
        save(step + 1, val or None)
      elif (every and (step + 1) % every == 0) or stopping:
        save(step + 1)
      if stopping and step + 1 < num_steps:
        manager.wait_until_finished()
        writer.flush()
        raise resilience.Preempted(stop[0] if stop else 'a signal to another process', step + 1,
                                   manager.directory)
  profile.stop()
  manager.wait_until_finished()
  manager.close()
  writer.close()
  return state


def _any_process(flag: bool) -> bool:
  """``flag`` or-ed over all processes (itself with one process)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


class _Profile:
  """``train.profile_steps = N > 0``: a `jax.profiler` trace of the N steps after the first one
  this run takes (which compiles) into ``WORKDIR/profile`` (TensorBoard's profile tab, Perfetto)."""

  def __init__(self, workdir: str, start_step: int, num_steps: int):
    self._dir = os.path.join(workdir, 'profile')
    self._start, self._stop = start_step + 1, start_step + 1 + num_steps
    self._active = False
    if num_steps and parallel.is_primary():
      logging.info('profiling steps %d..%d into %s', self._start + 1, self._stop, self._dir)
    else:
      self._start = self._stop = -1

  def __call__(self, steps_done: int) -> None:
    if steps_done == self._start:
      jax.profiler.start_trace(self._dir)
      self._active = True
    elif steps_done == self._stop:
      self.stop()

  def stop(self) -> None:
    if self._active:
      jax.profiler.stop_trace()
      self._active = False
