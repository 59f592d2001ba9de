"""RS-Net training step (k=4, 4 levels, batch 1): rsnet_jax vs a PyTorch twin, memory levers, FLOP/s.

Each (shape, variant) runs in its own process, so its peak RSS is its own; all use every core of
the machine (XLA's CPU thread pool; torch.set_num_threads(os.cpu_count())). Variants:
  jax                    `rsnet_jax.training.train.train_step` (Adam, eq. 4 loss), float32, state donated
  jax remat=levels|convs  `model.remat` (`jax.checkpoint` per U-Net level)
  jax bf16               `model.dtype='bfloat16'` (float32 parameters and loss)
  jax no donation        `train.donate_state=False`
  jax ensK               `model.ensemble_size=K` (K = 2, 3, 4, 5, 8): K members in one vmapped step
  torch                  `bench/torch_twin.py`: same layers and parameter count, same loss, Adam
Reported: seconds per step after compilation/warm-up (median of --steps), the step rate ratio
torch time / jax time (>= 1: JAX at least as fast), GFLOP/s from the analytic count of convolution
FLOPs (3 x the forward's: forward, input and weight gradients; the transposed convs counted as the
5x5x5 kernel they are) against the machine's float32 matmul peak (jnp.dot and torch.mm of 4096^2,
the better), peak RSS, and for JAX the XLA temp memory plan (`compiled.memory_analysis()`).
``--profile DIR`` traces one JAX step and prints where its time goes (XLA ops grouped by kind).
``jax xla`` / ``jax fold`` / ``jax fold_sum`` pick ``model.conv_impl`` (``jax`` is ``auto``: ``fold`` on
the CPU). ``--forward`` times one forward pass with dropout on (one MC sample; torch under
``torch.no_grad()``) instead of a training step.

  python bench/train_step.py --shapes 64,64,64 128,128,128 --variants jax 'jax xla' torch
  python bench/train_step.py --shapes 64,64,64 128,128,128 --variants jax 'jax xla' torch --forward
  python bench/train_step.py --shapes 192,208,160 --variants jax 'jax remat=levels' 'jax bf16' \
      --compile-only   # memory plans at the paper's 184x200x152 crop padded to 2**4
  python bench/train_step.py --shapes 64,64,64 --variants jax 'jax ens2' 'jax ens5'  # ensembles
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

JAX_LEVERS = {  # variant: (remat, dtype, donate, conv_impl)
    'jax': ('none', 'float32', True, 'auto'),  # auto: 'fold' on the CPU, 'xla' on GPU/TPU
    'jax xla': ('none', 'float32', True, 'xla'),
    'jax fold': ('none', 'float32', True, 'fold'),
    'jax fold_sum': ('none', 'float32', True, 'fold_sum'),
    'jax remat=levels': ('levels', 'float32', True, 'auto'),
    'jax remat=convs': ('convs', 'float32', True, 'auto'),
    'jax bf16': ('none', 'bfloat16', True, 'auto'),
    'jax xla bf16': ('none', 'bfloat16', True, 'xla'),
    'jax fold bf16': ('none', 'bfloat16', True, 'fold'),
    'jax bf16 remat=levels': ('levels', 'bfloat16', True, 'auto'),
    'jax no donation': ('none', 'float32', False, 'auto'),
}
# Deep ensembles (model.ensemble_size): 'jax ens2', 'jax ens4', ...: the default levers, K members.
ENSEMBLE_PREFIX = 'jax ens'
IN_CHANNELS, K, LEVELS, CLASSES = 3, 4, 4, 4


def conv_flops(shape: tuple[int, int, int], k: int = K, levels: int = LEVELS,
               cin: int = IN_CHANNELS, classes: int = CLASSES) -> float:
  """Forward-pass convolution FLOPs (2 x multiply-adds) of RS-Net for one ``shape`` volume."""
  vox = shape[0] * shape[1] * shape[2]
  macs = vox * 27 * (cin * k + k * k)  # start block
  ch = k
  for n in range(1, levels + 1):  # encoder step n: two convs at resolution 1/2**(n-1)
    f = k * 2**n
    macs += vox / 8**(n - 1) * 27 * (ch * f + f * f)
    ch = f
  for n in reversed(range(levels)):  # decoder step n: 5^3 transposed conv, two convs at 1/2**n
    f = k * 2**n
    macs += vox / 8**(n + 1) * 125 * ch * f + vox / 8**n * 27 * (2 * f * f + f * f)
    ch = f
  macs += vox * (27 * (k + 1) * 4 * k + 8 * k * k + 2 * k * k + k)  # regression head
  macs += vox * (27 * k * 4 * k + 8 * k * k + 2 * k * k + k * classes)  # segmentation head
  return 2 * macs


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, steps: int) -> list[float]:
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return times


def run_jax(variant: str, shape, steps: int, compile_only: bool, profile: str | None,
            warmup: int = 1, forward: bool = False) -> dict:
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import paper  # pylint: disable=g-import-not-at-top
  from rsnet_jax.runtime import compile_options
  from rsnet_jax.training import train  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  options = compile_options.for_backend()  # as the training loop compiles it
  members = 1
  if variant.startswith(ENSEMBLE_PREFIX):
    members, variant = int(variant[len(ENSEMBLE_PREFIX):]), 'jax'
  remat, dtype, donate, conv_impl = JAX_LEVERS[variant]
  config = paper.get_config()
  config.model.remat, config.model.dtype, config.model.conv_impl = remat, dtype, conv_impl
  config.model.ensemble_size = members
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {'inputs': rng.random((1,) + shape + (3,), np.float32),
           'complementary': rng.random((1,) + shape + (1,), np.float32),
           'target': rng.random((1,) + shape + (1,), np.float32),
           'labels': rng.integers(0, CLASSES, (1,) + shape).astype(np.int32),
           'valid': np.ones((1,) + shape, np.float32)}
  step = jax.jit(functools.partial(train.train_step, config=config,
                                   class_ratios=np.full(CLASSES, 0.25), steps_per_epoch=100),
                 donate_argnums=(0,) if donate else (), compiler_options=options)
  key = jax.random.key(1)
  if forward:  # one MC-dropout sample (of each member): the forward pass with dropout on
    def sample(params, batch, key):
      return state.apply_fn({'params': params}, batch['inputs'], batch['complementary'],
                            train=True, rngs={'dropout': key})
    if members > 1:
      from rsnet_jax.inference import forward_pass  # pylint: disable=g-import-not-at-top
      one_sample = sample
      sample = lambda params, batch, key: forward_pass.over_members(
          lambda p: one_sample(p, batch, key), params)
    step = jax.jit(lambda state, batch, key: (state, sample(state.params, batch, key)),
                   compiler_options=options)
  t = time.perf_counter()
  compiled = step.lower(state, batch, key).compile()
  result = {'compile_s': time.perf_counter() - t,
            'xla_temp_gib': compiled.memory_analysis().temp_size_in_bytes / 2**30,
            'params': sum(x.size for x in jax.tree.leaves(state.params))}
  if compile_only:
    return result
  holder = [state]

  def one():
    holder[0], parts = compiled(holder[0], batch, key)
    jax.block_until_ready(parts)

  _timed(one, warmup)
  result['times'] = _timed(one, steps)
  if profile:
    with jax.profiler.trace(profile):
      one()
    result['profile'] = profile_summary(profile, compiled.as_text())
  stats = jax.devices()[0].memory_stats() or {}  # GPU/TPU: the allocator's peak
  if 'peak_bytes_in_use' in stats:
    result['peak_device_gib'] = stats['peak_bytes_in_use'] / 2**30
  result['matmul_gflops'] = _jax_matmul_gflops()
  return result


def _jax_matmul_gflops(n: int = 4096) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  best = min(_timed(lambda: dot(a, a).block_until_ready(), 5))
  return 2 * n**3 / best / 1e9


def profile_summary(directory: str, hlo: str) -> dict[str, float]:
  """CPU-seconds of the traced step per kind of XLA op (`_op_kinds` of the compiled ``hlo``),
  summed over XLA's CPU threads."""
  from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top
  paths = [os.path.join(root, f) for root, _, files in os.walk(directory) for f in files
           if f.endswith('.xplane.pb')]
  data = ProfileData.from_file(max(paths, key=os.path.getmtime))
  kinds = _op_kinds(hlo)
  totals: dict[str, float] = {}
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_XLA'):
        continue
      for event in line.events:
        if event.name.startswith(('ThunkExecutor', 'end: ', 'ThreadpoolListener')):
          continue  # containers and markers, not ops
        kind = kinds.get(event.name, 'other ops')
        totals[kind] = totals.get(kind, 0.0) + event.duration_ns / 1e9
  return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _op_kinds(hlo: str) -> dict[str, str]:
  """Kind of each instruction of a compiled HLO module's text, by name. A convolution (alone, or
  inside a fusion: XLA:CPU hands most of them to its YNNPACK fusions) is a kernel gradient when its
  window is not the network's 3 or 1 wide (a kernel's gradient is a conv whose window is the whole
  input and whose output is the kernel), else a forward or input-gradient conv; layout transposes
  and other fusions by name."""
  bodies, current = {}, None
  for line in hlo.splitlines():
    if line and not line.startswith(' ') and line.rstrip().endswith('{'):
      current = line.split()[1 if line.startswith('ENTRY') else 0].lstrip('%')
      bodies[current] = []
    elif current:
      bodies[current].append(line)
  kinds = {}
  for line in hlo.splitlines():
    m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = \S+ (\w[\w\-]*)\(', line)
    if not m:
      continue
    name, op = m.groups()
    conv = line if op == 'convolution' else None
    if op == 'fusion':
      called = re.search(r'calls=%?([\w.\-]+)', line)
      conv = next((l for l in bodies.get(called.group(1) if called else '', [])
                   if ' convolution(' in l), None)
    if conv:
      window = re.search(r'window=\{size=([\dx]+)', conv)
      whole = window and any(int(n) not in (1, 3) for n in window.group(1).split('x'))
      kinds[name] = ('convolutions: kernel gradients' if whole else
                     'convolutions: forward and input gradients')
    elif 'transpose' in name:
      kinds[name] = 'layout transposes'
    elif op == 'fusion':
      kinds[name] = 'fused elementwise ops (relu, norm, dropout, Adam, loss, taps)'
  return kinds


def run_torch(shape, steps: int, warmup: int = 1, forward: bool = False) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_twin  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  model = torch_twin.RSNet(IN_CHANNELS, K, LEVELS, CLASSES)
  opt = torch.optim.Adam(model.parameters(), lr=2e-4)
  g = torch.Generator().manual_seed(0)
  inputs = torch.rand((1, IN_CHANNELS) + shape, generator=g)
  complementary = torch.rand((1, 1) + shape, generator=g)
  target = torch.rand((1, 1) + shape, generator=g)
  labels = torch.randint(0, CLASSES, (1,) + shape, generator=g)
  weights = torch.full((CLASSES,), 1.0)

  def one_forward():  # one MC-dropout sample: dropout on (train mode), no autograd
    with torch.no_grad():
      model(inputs, complementary)

  def one():
    if forward:
      return one_forward()
    opt.zero_grad(set_to_none=True)
    synthesis, logits = model(inputs, complementary)
    loss = torch_twin.loss_fn(synthesis, logits, target, labels, weights)
    loss.backward()
    opt.step()

  result = {'compile_s': sum(_timed(one, warmup)), 'params': torch_twin.parameter_count(model),
            'times': _timed(one, steps), 'threads': torch.get_num_threads()}
  a = torch.randn(4096, 4096)
  torch.mm(a, a)
  result['matmul_gflops'] = 2 * 4096**3 / min(_timed(lambda: torch.mm(a, a), 5)) / 1e9
  return result


def child(args) -> None:
  shape = tuple(int(s) for s in args.shape.split(','))
  if args.variant == 'torch':
    result = run_torch(shape, args.steps, args.warmup, args.forward)
  else:
    result = run_jax(args.variant, shape, args.steps, args.compile_only, args.profile, args.warmup,
                     args.forward)
  result['peak_rss_mb'] = _peak_rss_mb()
  print('RESULT ' + json.dumps(result))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--shapes', nargs='+', default=['64,64,64', '128,128,128'])
  parser.add_argument('--variants', nargs='+', default=['jax', 'torch'],
                      choices=list(JAX_LEVERS) + ['torch'] + [f'{ENSEMBLE_PREFIX}{k}' for k in (2, 3, 4, 5, 8)])
  parser.add_argument('--steps', type=int, default=3, help='timed steps after the warm-up')
  parser.add_argument('--warmup', type=int, default=1, help='untimed steps first (0 at full size)')
  parser.add_argument('--compile-only', action='store_true', help='JAX: memory plan only')
  parser.add_argument('--forward', action='store_true',
                      help='time one forward pass with dropout on (an MC sample) instead of a step')
  parser.add_argument('--profile', default=None, help='trace one JAX step into this folder')
  parser.add_argument('--python', default=sys.executable,
                      help='interpreter for the torch variant (one that has torch installed)')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--shape', help=argparse.SUPPRESS)
  parser.add_argument('--variant', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args)
    return
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])),
             JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'),
             TF_CPP_MIN_LOG_LEVEL='3')
  rows = []
  for shape in args.shapes:
    flops = (1 if args.forward else 3) * conv_flops(tuple(int(s) for s in shape.split(',')))
    results = {}
    for variant in args.variants:
      python = args.python if variant == 'torch' else sys.executable
      cmd = [python, os.path.abspath(__file__), '--child', '--shape', shape, '--variant', variant,
             '--steps', str(args.steps), '--warmup', str(args.warmup)]
      cmd += ['--compile-only'] if args.compile_only else []
      cmd += ['--forward'] if args.forward else []
      cmd += ['--profile', args.profile] if args.profile and variant != 'torch' else []
      print(f'{shape} {variant} ...', file=sys.stderr, flush=True)
      out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
      line = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
      if not line:
        print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f'{shape} {variant}: failed')
      results[variant] = json.loads(line[0][7:])
      print(f'  {json.dumps(results[variant])}', file=sys.stderr, flush=True)
    for variant, r in results.items():
      rows.append((shape, variant, r, flops, results.get('torch')))
  print(_table(rows, args.compile_only))


def _table(rows, compile_only: bool) -> str:
  if compile_only:
    lines = ['| shape | variant | parameters | compile (s) | XLA temp (GiB) |', '|---|---|---|---|---|']
    for shape, variant, r, _, _ in rows:
      lines.append(f'| {shape} | {variant} | {r["params"]:,} | {r["compile_s"]:.0f} | '
                   f'{r["xla_temp_gib"]:.2f} |')
    return '\n'.join(lines)
  lines = ['| shape | variant | parameters | s/step | steps/s | torch time / this | GFLOP/s | '
           '% of matmul peak | peak RSS (MB) | XLA temp (GiB) |', '|---' * 10 + '|']
  device = any('peak_device_gib' in r for _, _, r, _, _ in rows)
  if device:
    lines = [lines[0] + ' peak device memory (GiB) |', lines[1] + '---|']
  peak = max(r['matmul_gflops'] for _, _, r, _, _ in rows)
  for shape, variant, r, flops, torch_r in rows:
    t = statistics.median(r['times'])
    ratio = f'{statistics.median(torch_r["times"]) / t:.2f}' if torch_r else '-'
    temp = f'{r["xla_temp_gib"]:.2f}' if 'xla_temp_gib' in r else '-'
    lines.append(f'| {shape} | {variant} | {r["params"]:,} | {t:.2f} | {1 / t:.3f} | {ratio} | '
                 f'{flops / t / 1e9:.1f} | {100 * flops / t / 1e9 / peak:.1f} | '
                 f'{r["peak_rss_mb"]:,.0f} | {temp} |' +
                 (f' {r.get("peak_device_gib", float("nan")):.2f} |' if device else ''))
  lines.append(f'\nfloat32 matmul peak (4096^2, best of jnp.dot / torch.mm): {peak:.1f} GFLOP/s')
  for shape, variant, r, _, _ in rows:
    if 'profile' in r:
      total = sum(r['profile'].values())
      lines.append(f'\nprofile of one {variant} step at {shape} (XLA op CPU time by kind, '
                   f'{total:.2f} CPU-s in all):')
      lines += [f'- {kind}: {s:.2f} CPU-s ({100 * s / total:.0f} %)'
                for kind, s in list(r['profile'].items())[:8]]
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
