"""XLA compiler options for the jitted steps and forward passes.

On the CPU backend XLA compiles with LLVM at its default optimisation level 3. Level 2 compiles the
demo's train step in 14.7 s instead of 35.4 s and its 4-sample MC forward in 6.1 s instead of 32.6 s,
and runs them about as fast (`python bench/compile_level.py`, 2-core VM, jax 0.10.2; table in
bench/README.md), so `for_backend` asks for level 2 there. Other backends keep XLA's defaults, and
so does a run whose ``XLA_FLAGS`` set ``--xla_backend_optimization_level`` itself (the tests use 0).
"""

from __future__ import annotations

import os

import jax

CPU_LEVEL = 2
_FLAG = '--xla_backend_optimization_level'


def for_backend(backend: str | None = None) -> dict[str, int] | None:
  """``compiler_options`` for `jax.jit` on ``backend`` (default: JAX's default backend)."""
  if _FLAG in os.environ.get('XLA_FLAGS', ''):
    return None
  if (backend or jax.default_backend()) != 'cpu':
    return None
  return {'xla_backend_optimization_level': CPU_LEVEL}
