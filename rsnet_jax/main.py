r"""rsnet_jax entry point.

  python -m rsnet_jax.main --config configs/demo.py --workdir runs/demo [--mode train]
  python -m rsnet_jax.main --config configs/default.py --workdir W --mode evaluate
  python -m rsnet_jax.main --config configs/default.py --workdir W --mode uncertainty
  python -m rsnet_jax.main --config configs/default.py --workdir W --mode predict \
      --input CASE_OR_FOLDER --output OUT

Config fields are overridden on the command line, e.g. ``--config.train.num_epochs=3``.
Exit status: 0 done; 2 a user error (bad data, config or paths: one line per problem, ``--debug``
or ``--verbose`` shows the traceback); 3 training stopped on a non-finite loss or gradient; 75
stopped by SIGTERM or SIGINT after saving a checkpoint (rerun the same command to resume).
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from rsnet_jax import baselines
from rsnet_jax import experiments
from rsnet_jax.baselines import fitted
from rsnet_jax.data import anyseq
from rsnet_jax.data import augment
from rsnet_jax.data import footprint
from rsnet_jax.data import grid
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import evaluate
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import uncertainty_study
from rsnet_jax.inference import predict
from rsnet_jax.runtime import memory
from rsnet_jax.runtime import parallel
from rsnet_jax.runtime import resilience
from rsnet_jax.runtime import workdir_lock
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file (get_config()).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, logs and outputs.')
flags.DEFINE_enum('mode', 'train', ['train', 'evaluate', 'predict', 'uncertainty',
                                    'augment_preview'],
                  'What to do: uncertainty = the MC-dropout study on the test (or val) split; '
                  'augment_preview = a montage of training examples as read and as augmented.')
flags.DEFINE_string('input', None, 'predict: a case folder or a folder of case folders.')
flags.DEFINE_string('output', None, 'predict: output folder (default WORKDIR/predictions).')
flags.DEFINE_bool('overwrite', False, 'predict: rewrite outputs that already exist.')
flags.DEFINE_bool('force_unlock', False, 'Take over a folder lock held by a run on another host '
                  '(only when that run is known to be gone).')
flags.DEFINE_bool('debug', False, 'Show tracebacks for user errors.')
flags.DEFINE_alias('verbose', 'debug')
flags.DEFINE_enum('distributed', 'auto', ['auto', 'on', 'off'],
                  'jax.distributed.initialize: auto = when SLURM/Open MPI run several tasks or a '
                  'coordinator address is given; on = always (TPU VM slices: JAX detects the rest).')
flags.DEFINE_string('coordinator_address', None, 'Multi-process: HOST:PORT of process 0.')
flags.DEFINE_integer('num_processes', None, 'Multi-process: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-process: index of this process.')
flags.DEFINE_integer('shutdown_timeout', 6 * 3600,
                     'Multi-process: seconds a finished process waits for process 0 (which '
                     'evaluates alone after training).')
flags.mark_flags_as_required(['config', 'workdir'])

EXIT_USER_ERROR = 2


def _restored_state(config, workdir, task):
  """The checkpoint, restored by every process together, as host arrays (process 0 uses them); a
  Table I baseline's fitted state (`baselines.fitted.Baseline`)."""
  if config.model.variant in baselines.VARIANTS:
    return fitted.restore(config, workdir, task)
  state = train.abstract_train_state(config, task)
  state, step = checkpoints.restore_params(workdir, config, state, config.predict.checkpoint)
  if parallel.is_primary():
    print(f'restored the {config.predict.checkpoint} checkpoint: step {step}')
  return state


def _held_out(splits) -> str:
  """The split that evaluation and the uncertainty study run on: test, or val when test is empty."""
  return 'test' if splits['test'] else 'val'


def run_evaluate(config, workdir, state, task, splits) -> None:
  """Scores the held-out split; an ``anyseq`` model once per sequence, each in turn missing."""
  split = _held_out(splits)
  out_dir = os.path.join(workdir, 'evaluation')
  for missing in task.inputs if task.variant == 'anyseq' else (None,):
    name = split if missing is None else f'{split}_{missing}'
    if isinstance(state, fitted.Baseline):
      summary = evaluate.score_cases(state, task, splits[split], out_dir, name)
    else:
      summary = evaluate.evaluate_cases(config, state.params, state.apply_fn, task, splits[split],
                                        out_dir, name, missing)
    without = '' if missing is None else f', {missing} missing'
    print(f'evaluation on the {split} split ({len(splits[split])} cases{without}): '
          f'{report.format_summary(summary)}')
    print(f'  tables: {os.path.join(out_dir, name + ".md")} and .json')


def run_uncertainty(config, workdir, state, task, splits) -> None:
  name = _held_out(splits)
  out_dir = os.path.join(workdir, 'uncertainty')
  key = jax.random.fold_in(jax.random.key(config.seed), 2)
  result = uncertainty_study.study_cases(config, state.params, state.apply_fn, task, splits[name],
                                         out_dir, name, key)
  headline = ('spearman_var_sqerr', 'ause', 'variance_healthy', 'variance_WT', 'ece_brain',
              'mutual_information_healthy', 'mutual_information_WT')
  print(f'uncertainty study on the {name} split ({len(splits[name])} cases, '
        f'{config.uncertainty.num_mc_samples} MC samples): ' + report.format_summary(
            {k: v for k, v in result['summary'].items() if k in headline}))
  if 'ece_pooled' in result['overall']:
    print(f'  pooled ECE {result["overall"]["ece_pooled"]:.4f}')
  print(f'  tables and figures: {out_dir}')


def run_predict(config, state, task, cases, out_dir, overwrite) -> None:
  key = jax.random.fold_in(jax.random.key(config.seed), 1)
  if isinstance(state, fitted.Baseline):  # deterministic: the synthesis only
    written = predict.write_cases(config, lambda example, _: state(example), task, cases, out_dir,
                                  False, overwrite)
  else:
    written = predict.predict_cases(config, state.params, state.apply_fn, task, cases, out_dir,
                                    key, overwrite)
  print(f'predicted {len(cases)} case(s) into {out_dir} ({len(written)} files written, '
        f'record in {os.path.join(out_dir, "manifest.json")})')
  for path in written:
    print(f'  {path}')


def run_augment_preview(config, workdir, task, splits, num_examples: int = 4) -> str:
  """Writes ``WORKDIR/augmentation_preview.png``: the first training examples of the run's stream
  as read and as ``config.augment`` changes them; returns its path."""
  streams = [pipeline.to_iterator(pipeline.train_dataset(splits['train'], task, 1, 1, config.seed,
                                                         config=c), 0) for c in (None, config)]
  rows = []
  for i, (plain, augmented) in enumerate(zip(*streams)):
    if i == num_examples:
      break
    rows += [(f'#{i} as read', {k: v[0] for k, v in plain.items()}),
             (f'#{i} augmented', {k: v[0] for k, v in augmented.items()})]
  path = os.path.join(workdir, 'augmentation_preview.png')
  report.augmentation_montage(rows, task, path)
  return path


def _quiet_library_info(record) -> bool:
  """Keeps Orbax's and Grain's INFO chatter out of the console (their warnings stay)."""
  return record.levelno >= std_logging.WARNING or not any(
      f'/{lib}/' in record.pathname for lib in ('orbax', 'grain'))


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.debug:
    logging.get_absl_handler().addFilter(_quiet_library_info)
  try:
    parallel.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes,
                        FLAGS.process_id, FLAGS.shutdown_timeout)
    resilience.check_workdir(FLAGS.workdir)
    with _folder_lock(FLAGS.mode, FLAGS.workdir, FLAGS.output):
      run(FLAGS.config, FLAGS.workdir, FLAGS.mode)
  except resilience.Preempted as e:
    print(f'rsnet_jax: {e}', file=sys.stderr)
    sys.exit(resilience.EXIT_PREEMPTED)
  except UserError as e:
    if FLAGS.debug:
      raise
    for line in e.problems:
      print(f'rsnet_jax: error: {line}', file=sys.stderr)
    sys.exit(resilience.EXIT_DIVERGED if isinstance(e, resilience.Diverged) else EXIT_USER_ERROR)
  except Exception as e:  # pylint: disable=broad-except
    full = resilience.disk_full(e)
    if full is None or FLAGS.debug:
      raise
    print(f'rsnet_jax: error: disk full writing {full.filename or "a file"} ({full.strerror}); '
          'the checkpoints and outputs completed before are intact; free some space and rerun '
          'the same command to go on', file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def _folder_lock(mode: str, workdir: str, output: str | None):
  """Process 0's hold on the folder the mode writes: WORKDIR, or predict's output folder."""
  if not parallel.is_primary():
    return contextlib.nullcontext()
  folder = (output or os.path.join(workdir, 'predictions')) if mode == 'predict' else workdir
  return workdir_lock.hold(folder, FLAGS.force_unlock)


def run(config, workdir: str, mode: str) -> None:
  """Runs ``mode`` on ``workdir`` (checked writable and locked by `main`)."""
  start = time.time()
  if config.get('compilation_cache_dir'):
    jax.config.update('jax_compilation_cache_dir', os.path.abspath(config.compilation_cache_dir))
  logging.info('jax devices: %s (process %d of %d)', jax.devices(), jax.process_index(),
               jax.process_count())
  task = pipeline.Task.from_config(config)
  if mode == 'train' and config.get('experiment'):
    experiments.run(config, workdir)
  elif mode == 'train':
    if config.model.variant in baselines.VARIANTS:
      fitted.check(config)
      splits = pipeline.dataset_splits(config, workdir, task)
      state = fitted.train(config, workdir, splits)  # fitted (or reused) on this process
      task = grid.on_model_grid(config, workdir, task)
    else:
      train.preflight(config, workdir, task)
      splits = pipeline.dataset_splits(config, workdir, task)
      train.train_and_evaluate(config, workdir, splits)
      task = grid.on_model_grid(config, workdir, task)
      state = _restored_state(config, workdir, task)
    if not parallel.is_primary():
      return  # process 0 evaluates and writes
    run_evaluate(config, workdir, state, task, splits)
    if config.train.predict_test_cases and splits['test']:
      run_predict(config, state, task, splits['test'], os.path.join(workdir, 'predictions'), True)
    print(f'workdir {workdir}:')
    print(f'  cases         {config.data.data_dir or os.path.join(workdir, "data")}')
    if isinstance(state, fitted.Baseline):
      print(f'  fitted model  {os.path.join(workdir, fitted.FOLDER)}')
      print(f'done in {time.time() - start:.0f} s')
      return
    print(f'  checkpoints   {os.path.join(workdir, "checkpoints")}')
    print(f'  TensorBoard   tensorboard --logdir {workdir}')
    print(f'  montages      {os.path.join(workdir, "montages")}')
    print(f'  model summary {os.path.join(workdir, "model_summary.txt")}')
  elif mode == 'augment_preview':
    if not augment.enabled(config):
      logging.warning('config.augment is all off: the preview shows the examples as read twice')
    splits = pipeline.dataset_splits(config, workdir, task)
    print(f'augmentation preview: {run_augment_preview(config, workdir, task, splits)}')
  elif mode == 'uncertainty' and task.variant in baselines.VARIANTS:
    raise UserError(f'--mode uncertainty needs samples; {task.variant} is deterministic (a Table I '
                    'baseline): --mode evaluate scores it')
  elif mode == 'uncertainty' and task.variant == 'anyseq':
    raise UserError('--mode uncertainty studies one target; for an anyseq model, predict with '
                    '--config.predict.num_mc_samples=N (variance and entropy files per case)')
  elif mode in ('evaluate', 'uncertainty'):
    splits = pipeline.dataset_splits(config, workdir, task)
    task = grid.on_model_grid(config, workdir, task)
    action = run_evaluate if mode == 'evaluate' else run_uncertainty
    state = _restored_state(config, workdir, task)
    if parallel.is_primary():
      action(config, workdir, state, task, splits)
  else:
    if not FLAGS.input:
      raise UserError('--mode predict needs --input (a case folder or a folder of cases)')
    cases = layouts.discover(FLAGS.input, layouts.from_config(config.data))
    task = grid.on_model_grid(config, workdir, task)
    # refused from their headers before a voxel is read: cases too large for the memory budget
    fit, problems = footprint.check_memory(
        cases, task.inputs, task.spacing, memory.host_budget(config),
        footprint.output_bytes_per_voxel(task.segments, task.variant != 'snet',
                                         config.model.num_classes))
    if task.variant == 'anyseq':  # each case may lack one sequence, a different one
      valid, invalid = anyseq.validate_cases(fit, task.inputs)
    else:
      valid, invalid = layouts.validate_all(fit, task.required_files(False, False), True)
    problems += invalid
    out_dir = FLAGS.output or os.path.join(workdir, 'predictions')
    failed = len(cases) - len(valid)
    if valid:
      state = _restored_state(config, workdir, task)
      if not parallel.is_primary():
        return
      try:
        run_predict(config, state, task, valid, out_dir, FLAGS.overwrite)
      except predict.UnreadableCases as e:  # the other cases are written
        problems += e.problems
        failed += len(e.case_ids)
    if problems:
      raise UserError(problems + [f'{failed} of {len(cases)} cases not predicted'])
  print(f'done in {time.time() - start:.0f} s')


if __name__ == '__main__':
  app.run(main)
