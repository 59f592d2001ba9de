"""The 3x3x3 convolution implementations (model.conv_impl): each equals flax's nn.Conv, holds its
parameters, and a model saved with one restores and predicts the same with another."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.model import conv
from rsnet_jax.model import models
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import tiny_config

FAST = [i for i in conv.IMPLS if i not in ('auto', 'xla')]


def _layer_shapes(cin: int = 3, k: int = 4, levels: int = 4) -> list[tuple[int, int]]:
  """(Cin, Cout) of every 3x3x3 conv of the paper's RS-Net (k=4, 4 levels, 3 inputs), the sub-pixel
  upsampling's 8-phase conv included."""
  shapes = [(cin, k), (k, k)]
  ch = k
  for n in range(1, levels + 1):
    shapes += [(ch, k * 2**n), (k * 2**n, k * 2**n)]
    ch = k * 2**n
  for n in reversed(range(levels)):
    f = k * 2**n
    shapes += [(ch, 8 * f), (2 * f, f), (f, f)]
    ch = f
  shapes += [(k + 1, 4 * k), (k, 4 * k)]  # regression (with the complementary input), segmentation
  return sorted(set(shapes))


def test_auto_is_fold_on_cpu_and_xla_elsewhere():
  assert conv.resolve_impl('auto', 'cpu') == 'fold'
  assert conv.resolve_impl('auto', 'gpu') == conv.resolve_impl('auto', 'tpu') == 'xla'
  assert conv.resolve_impl('fold_sum', 'gpu') == 'fold_sum'
  with pytest.raises(ValueError, match='model.conv_impl'):
    conv.resolve_impl('im2col')


@pytest.mark.parametrize('cin,cout', _layer_shapes())
def test_every_impl_equals_flax_conv_values_and_gradients(cin, cout):
  # batch 2 x depth 5: 10 folded slices, so the CPU's kernel gradient takes a chunk of 8 and one of 2
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, 5, cin))
  reference = nn.Conv(cout, (3, 3, 3), padding='SAME')
  params = reference.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.05, params)  # a non-zero bias too
  probe = jax.random.normal(jax.random.key(2), (2, 5, 6, 5, cout))  # a loss touching every output

  def loss(module, params, x):
    return jnp.sum(module.apply(params, x) * probe)

  @jax.jit
  def all_impls(params, x):
    modules = {'nn.Conv': reference} | {i: conv.Conv3D(cout, impl=i) for i in conv.IMPLS}
    return {name: jax.value_and_grad(functools.partial(loss, m), argnums=(0, 1))(params, x)
            for name, m in modules.items()}

  out = all_impls(params, x)
  expected_value, (expected_dparams, expected_dx) = out.pop('nn.Conv')
  scale = float(jnp.abs(expected_value)) + 1.0
  for impl, (value, (dparams, dx)) in out.items():
    np.testing.assert_allclose(value, expected_value, atol=1e-5 * scale, err_msg=impl)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-4, err_msg=impl)
    for name in ('kernel', 'bias'):
      np.testing.assert_allclose(dparams['params'][name], expected_dparams['params'][name],
                                 rtol=1e-4, atol=1e-4, err_msg=f'{impl} {name}')


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason="XLA:CPU's kernel choice")
@pytest.mark.parametrize('cin,cout,channels', [(3, 4, 18), (4, 4, 18), (8, 4, 24), (4, 8, 16),
                                               (5, 16, 16), (4, 16, 16), (8, 8, 24)])
def test_fold_pads_few_channel_convs_for_xla_cpus_kernels(cin, cout, channels):
  # XLA:CPU takes a 2D conv to YNNPACK only when max(Cin, Cout) > 16: fold pads the stacked taps of
  # convs with <= 4 outputs to 18 channels for it, and those left to Eigen to a multiple of 8
  # (bench/README.md, "Few output channels" and "Eigen's convs on a multiple of 8 channels").
  x = jnp.ones((1, 4, 6, 5, cin))
  kernel = jnp.ones((3, 3, 3, cin, cout))
  fn = jax.jit(functools.partial(conv.conv3x3x3, impl='fold'))
  lowered = fn.lower(x, kernel)
  assert f'tensor<4x6x5x{channels}xf32>' in lowered.as_text()
  assert ('ynn_fusion' in lowered.compile().as_text()) == (channels > 16 or cout > 16)


@pytest.mark.parametrize('slices', [1, 3, 8, 20])
def test_chunked_kernel_gradient_equals_autodiff_of_the_2d_conv(slices):
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], (10, 6, 5, 7))
  g = jax.random.normal(keys[1], (10, 6, 5, 3))
  kernel = jnp.zeros((3, 3, 7, 3))
  expected = jax.vjp(lambda k: conv.conv2d(x, k), kernel)[1](g)[0]
  got = jax.jit(functools.partial(conv.kernel_grad_chunked, slices=slices))(x, g)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_fold_takes_the_kernel_gradient_in_chunks_of_folded_slices_on_the_cpu():
  x = jnp.ones((2, 10, 6, 5, 4))  # 20 folded slices: chunks of 8, 8 and 4 on the CPU
  kernel = jnp.ones((3, 3, 3, 4, 8))
  grads = jax.grad(lambda x, k: jnp.sum(conv.conv3x3x3(x, k, 'fold')), argnums=(0, 1))
  convs = str(jax.make_jaxpr(grads)(x, kernel)).count('conv_general_dilated[')
  # forward, input gradient, and the kernel gradient's chunks (one on other backends)
  assert convs == 2 + (3 if jax.default_backend() == 'cpu' else 1)


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='the chunked form is the CPU\'s')
def test_fold_takes_the_kernel_gradient_over_the_real_channels_not_the_zero_padding():
  x = jnp.ones((1, 4, 6, 5, 3))  # 9 stacked taps, padded with zeros to 18 for YNNPACK
  kernel = jnp.ones((3, 3, 3, 3, 4))
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda k: jnp.sum(conv.conv3x3x3(x, k, 'fold'))))(kernel))
  assert 'f32[4,6,5,18]' in jaxpr  # the forward pass runs on the padded taps
  assert 'f32[3,3,9,4] = conv_general_dilated' in jaxpr  # the kernel gradient on the 9 real ones
  assert 'f32[3,3,18,4] = conv_general_dilated' not in jaxpr


def test_fold_training_plan_stays_within_a_fifth_of_xlas():
  # The backward pass keeps each conv's input and rebuilds its 3x-channel taps once the output's
  # gradient exists; kept from the forward pass (transposed for the kernel gradient, as XLA does
  # when free to), they made this plan 1.33x xla's (1.39x at the paper's crop, issue bound 1.2x).
  x = jnp.ones((1, 16, 16, 16, 3))
  c = x[..., :1]
  plans = {}
  for impl in ('xla', 'fold'):
    model = models.RSNet(base_filters=2, num_levels=2, conv_impl=impl)
    params = jax.eval_shape(model.init, jax.random.key(0), x, c)['params']

    def loss(p, model=model):
      out = model.apply({'params': p}, x, c, train=True, rngs={'dropout': jax.random.key(1)})
      return sum(jnp.sum(v**2) for v in out.values())

    plans[impl] = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
  assert plans['fold'].temp_size_in_bytes <= 1.2 * plans['xla'].temp_size_in_bytes, plans


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_pointwise_conv_equals_nn_conv_parameters_values_and_gradients(dtype):
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5, 6))
  flax_conv = nn.Conv(7, (1, 1, 1), dtype=dtype)
  ours = conv.PointwiseConv3D(7, dtype)
  params = flax_conv.init(jax.random.key(1), x)
  got = ours.init(jax.random.key(1), x)
  assert jax.tree.structure(got) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, got, params)
  loss = lambda module: jax.grad(lambda p, x: jnp.sum(jnp.sin(module.apply(p, x))), (0, 1))
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), rtol=tol,
                             atol=tol)
  for got_grad, expected in zip(jax.tree.leaves(loss(ours)(params, x)),
                                jax.tree.leaves(loss(flax_conv)(params, x))):
    np.testing.assert_allclose(got_grad, expected, rtol=tol, atol=tol)


def test_conv3d_initialises_exactly_like_nn_conv():
  x = jnp.ones((1, 4, 4, 4, 5))
  expected = nn.Conv(7, (3, 3, 3), padding='SAME').init(jax.random.key(3), x)
  got = conv.Conv3D(7, impl='fold').init(jax.random.key(3), x)
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_rsnet_parameters_do_not_depend_on_impl_and_outputs_agree_with_dropout_on():
  x = jax.random.uniform(jax.random.key(0), (1, 8, 8, 8, 3))
  c = x[..., :1]
  trees, outputs = {}, {}
  for impl in ('xla',) + tuple(FAST):
    model = models.RSNet(base_filters=2, num_levels=2, dropout_rate=0.3, conv_impl=impl)
    trees[impl] = jax.jit(model.init)(jax.random.key(1), x, c)['params']
    apply = jax.jit(functools.partial(model.apply, train=True))
    outputs[impl] = apply({'params': trees['xla']}, x, c, rngs={'dropout': jax.random.key(2)})
  for impl in FAST:
    jax.tree.map(np.testing.assert_array_equal, trees[impl], trees['xla'])
    for name in outputs['xla']:
      np.testing.assert_allclose(outputs[impl][name], outputs['xla'][name], rtol=1e-4, atol=1e-5,
                                 err_msg=f'{impl} {name}')


@pytest.mark.slow  # a checkpoint or training run: left out of the quick tier
def test_checkpoint_saved_with_one_impl_restores_and_predicts_the_same_with_another(
    tiny_dataset, tmp_path):
  saved_with = tiny_config(**{'model.conv_impl': 'xla', 'predict.num_mc_samples': 2})
  task = pipeline.Task.from_config(saved_with)
  state = train.create_train_state(saved_with, task, jax.random.key(0))
  checkpoints.checkpoint_manager(str(tmp_path), saved_with).save(
      1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  case = layouts.discover(tiny_dataset)[0]
  example, _ = pipeline.load_case(case, task, references=False)
  outputs = {}
  for impl in ('xla', 'fold'):
    config = tiny_config(**{'model.conv_impl': impl, 'predict.num_mc_samples': 2})
    fresh = train.create_train_state(config, task, jax.random.key(9))  # other weights: overwritten
    restored, step = checkpoints.restore_params(str(tmp_path), config, fresh, 'latest')
    assert step == 1
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
    fn = jax.jit(functools.partial(forward_pass.forward, apply_fn=restored.apply_fn,
                                   num_mc_samples=2))
    outputs[impl] = predict.predict_example(fn, restored.params, example, jax.random.key(3))
  for name in outputs['xla']:
    np.testing.assert_allclose(outputs['fold'][name], outputs['xla'][name], rtol=1e-4, atol=1e-5,
                               err_msg=name)
