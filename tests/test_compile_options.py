"""Which XLA compiler options the jitted steps get."""

from rsnet_jax.runtime import compile_options


def test_level_2_on_the_cpu_unless_xla_flags_set_it(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  assert compile_options.for_backend('cpu') == {'xla_backend_optimization_level': 2}
  assert compile_options.for_backend('gpu') is None
  assert compile_options.for_backend('tpu') is None
  monkeypatch.setenv('XLA_FLAGS', '--xla_backend_optimization_level=0')
  assert compile_options.for_backend('cpu') is None
