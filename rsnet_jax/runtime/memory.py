"""Memory that fits: the budget a program may plan for, XLA's plan of a compiled program, and the
MC chunk sizes to try (`forward_pass.MCForward` picks the largest that fits for
``predict.mc_chunk_size = 'auto'``).

The budget is ``memory_budget_gib`` when set; otherwise 90 % of the device's memory on a GPU/TPU
(the allocator's limit) and 50 % of the machine's RAM on the CPU (the rest for the inputs, the
outputs and everything else). It depends on the machine, not on its momentary load, so the same
machine always picks the same chunk size: MC samples computed in other chunk sizes agree only to
float32 round-off (docs/uncertainty.md).
"""

from __future__ import annotations

import os

import jax
import ml_collections

from rsnet_jax.errors import UserError

GIB = 2**30


def budget(config: ml_collections.ConfigDict) -> tuple[int, str]:
  """``(bytes, description)`` a compiled program may plan for on this process's first device."""
  gib = float(config.get('memory_budget_gib', 0) or 0)
  if gib > 0:
    return int(gib * GIB), f'memory_budget_gib = {gib:g}'
  device = jax.local_devices()[0]
  stats = device.memory_stats() or {}
  if stats.get('bytes_limit'):
    return int(0.9 * stats['bytes_limit']), (
        f'90 % of the {stats["bytes_limit"] / GIB:.1f} GiB of the {device.device_kind}')
  return _half_the_ram()


def _half_the_ram() -> tuple[int, str]:
  total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return int(0.5 * total), f'50 % of the {total / GIB:.1f} GiB of RAM'


def host_budget(config: ml_collections.ConfigDict) -> tuple[int, str]:
  """``(bytes, description)`` the host may hold reading and writing a case: `budget` when the
  first device is the CPU (the same memory), else 50 % of the machine's RAM."""
  if jax.local_devices()[0].platform == 'cpu':
    return budget(config)
  return _half_the_ram()


def plan(compiled) -> int:
  """Bytes XLA plans for a compiled program: scratch, arguments and outputs (less aliased)."""
  stats = compiled.memory_analysis()
  if stats is None:
    return 0
  return (stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes -
          stats.alias_size_in_bytes)


def check_fits(compiled, config: ml_collections.ConfigDict, what: str, levers: str) -> None:
  """`UserError` naming the plan, the budget and ``levers`` when ``compiled`` does not fit."""
  need, (have, source) = plan(compiled), budget(config)
  if need > have:
    raise UserError(f'{what} plans {need / GIB:.1f} GiB, more than the {have / GIB:.1f} GiB '
                    f'budget ({source}); lower it with {levers}, or set memory_budget_gib')


def chunk_candidates(num_samples: int) -> list[int]:
  """N, then halved (rounded up) down to 1: the MC chunk sizes 'auto' tries, largest first."""
  sizes, c = [], num_samples
  while True:
    sizes.append(c)
    if c == 1:
      return sizes
    c = -(-c // 2)
