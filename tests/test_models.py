"""The network of paper Sec. II: shapes, parameter counts, the sub-pixel upsampling, dropout keys."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.model import models


@pytest.mark.parametrize('shape,cin,cout', [((1, 2, 2, 2), 1, 1), ((2, 4, 6, 8), 3, 5),
                                            ((1, 3, 5, 4), 8, 4)])
def test_subpixel_upsampling_equals_flax_conv_transpose(shape, cin, cout):
  x = jax.random.normal(jax.random.key(0), shape + (cin,))
  reference = nn.ConvTranspose(cout, (5, 5, 5), strides=(2, 2, 2), padding='SAME')
  params = reference.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias too
  ours = models.SubPixelConvTranspose(cout)
  # Same parameter layout: the reference parameters load into ours unchanged.
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  expected = reference.apply(params, x)
  got = ours.apply(params, x)
  assert got.shape == expected.shape == (shape[0], 2 * shape[1], 2 * shape[2], 2 * shape[3], cout)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('variant,cin,keys', [('rsnet', 3, {'synthesis', 'logits'}),
                                              ('rnet', 3, {'synthesis'}),
                                              ('snet', 4, {'logits'})])
def test_output_shapes_of_every_variant(variant, cin, keys):
  model = models.RSNet(variant=variant, base_filters=2, num_levels=3, num_classes=4)
  x = jnp.ones((2, 8, 16, 8, cin))
  comp = jnp.ones((2, 8, 16, 8, 1)) if variant == 'rsnet' else None
  variables = jax.eval_shape(model.init, jax.random.key(0), x, comp)  # shapes only: no compile
  out = jax.eval_shape(model.apply, variables, x, comp)
  assert set(out) == keys
  if 'synthesis' in out:
    assert out['synthesis'].shape == (2, 8, 16, 8, 1)
  if 'logits' in out:
    assert out['logits'].shape == (2, 8, 16, 8, 4)


@pytest.mark.parametrize('variant,cin', [('rsnet', 3), ('rnet', 3), ('snet', 4)])
@pytest.mark.parametrize('k,levels,classes', [(4, 4, 4), (2, 3, 5), (3, 2, 2)])
@pytest.mark.parametrize('norm,affine,widths,up,pool_first,head', [
    ('paper', False, False, 5, False, 'paper'), ('every_conv', True, True, 2, True, 'linear')])
def test_parameter_count_formula_matches_flax(variant, cin, k, levels, classes, norm, affine,
                                              widths, up, pool_first, head):
  filters = tuple(3 * n + 5 for n in range(levels + 1)) if widths else ()
  model = models.RSNet(variant=variant, base_filters=k, num_levels=levels, num_classes=classes,
                       norm=norm, instance_norm_affine=affine, filters=filters, upsample_kernel=up,
                       pool_first=pool_first, segmentation_head=head, regression_head=head)
  n = 2**levels
  comp = jnp.ones((1, n, n, n, 1)) if variant == 'rsnet' else None
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, n, n, n, cin)), comp)['params']
  formula = models.count_parameters(variant, cin, k, levels, classes, affine, norm, filters, up,
                                    pool_first, head, head)
  assert models.summarize(params) == formula


def test_basicunet_widths_and_2x2x2_upsampling_count():
  # BasicUNet's widths (8, 16, 32, 48, 64) with 2x2x2 upsampling: the size of the paper's network
  counts = models.count_parameters('rsnet', 3, 4, 4, 4, norm='every_conv',
                                   filters=(8, 16, 32, 48, 64), upsample_kernel=2)
  assert counts['total'] == 697_297
  assert counts['decoder3'] == (8 * 64 * 48 + 48) + (27 * 96 * 48 + 48) + (27 * 48 * 48 + 48)
  assert counts['segmentation'] == 27 * 8 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4 + 4 * 4 + 4
  with pytest.raises(ValueError, match='model.filters'):
    models.count_parameters('rsnet', 3, 4, 4, 4, filters=(8, 16, 32))
  with pytest.raises(ValueError, match='model.upsample_kernel'):
    models.count_parameters('rsnet', 3, 4, 4, 4, upsample_kernel=3)


@pytest.mark.parametrize('pool_first', [False, True])
def test_pool_first_runs_each_encoder_steps_convs_at_its_own_resolution(pool_first):
  # the paper's encoder step n convolves at 1 / 2**(n-1) and then pools; BasicUNet's order pools
  # first, so the convs of width filters[n] run at 1 / 2**n: the same parameters, other shapes
  model = models.RSNet(variant='snet', num_levels=2, filters=(2, 3, 5), pool_first=pool_first)
  x = jnp.ones((1, 8, 8, 8, 4))
  variables = model.init(jax.random.key(0), x)
  _, state = model.apply(variables, x, capture_intermediates=True, mutable=['intermediates'])
  got = {n: state['intermediates']['unet'][f'encoder{n}_conv1']['__call__'][0].shape[1:]
         for n in (1, 2)}
  side = {1: 4, 2: 2} if pool_first else {1: 8, 2: 4}
  assert got == {n: (side[n],) * 3 + (width,) for n, width in ((1, 3), (2, 5))}
  other = models.RSNet(variant='snet', num_levels=2, filters=(2, 3, 5), pool_first=not pool_first)
  assert jax.tree.map(jnp.shape, other.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape,
                                                                                  variables)


def test_linear_head_is_one_pointwise_conv_of_the_unet_features():
  model = models.RSNet(variant='rsnet', num_levels=2, filters=(3, 4, 5),
                       segmentation_head='linear', regression_head='linear')
  x, comp = jnp.ones((1, 4, 4, 4, 3)), jnp.full((1, 4, 4, 4, 1), 2.0)
  variables = model.init(jax.random.key(0), x, comp)
  p = variables['params']
  assert jax.tree.map(jnp.shape, {h: p[h] for h in ('regression', 'segmentation')}) == {
      'regression': {'Conv_3': {'kernel': (1, 1, 1, 4, 1), 'bias': (1,)}},
      'segmentation': {'Conv_3': {'kernel': (1, 1, 1, 3, 4), 'bias': (4,)}}}
  features = model.apply(variables, x, method=lambda m, v: m.unet(v))
  out = model.apply(variables, x, comp)
  seg = p['segmentation']['Conv_3']
  expected = jnp.einsum('bdhwc,co->bdhwo', features, seg['kernel'].reshape(3, 4)) + seg['bias']
  np.testing.assert_allclose(out['logits'], expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='model.segmentation_head'):
    models.RSNet(variant='snet', num_levels=2, segmentation_head='mlp').init(jax.random.key(0), x)
  with pytest.raises(ValueError, match='model.regression_head'):
    models.count_parameters('rsnet', 3, regression_head='mlp')
  mixed = models.RSNet(variant='rsnet', num_levels=2, filters=(3, 4, 5), segmentation_head='linear')
  counts = models.count_parameters('rsnet', 3, 4, 2, 4, filters=(3, 4, 5),
                                   segmentation_head='linear')
  assert counts['segmentation'] == 3 * 4 + 4 and counts['regression'] > 100
  assert models.summarize(mixed.init(jax.random.key(0), x, comp)['params']) == counts


@pytest.mark.parametrize('shape,cin,cout', [((1, 1, 2, 3), 1, 1), ((2, 3, 4, 5), 3, 2)])
def test_patch_upsampling_equals_flax_conv_transpose(shape, cin, cout):
  x = jax.random.normal(jax.random.key(0), shape + (cin,))
  reference = nn.ConvTranspose(cout, (2, 2, 2), strides=(2, 2, 2), padding='VALID')
  params = jax.tree.map(lambda p: p + 0.1, reference.init(jax.random.key(1), x))
  ours = models.PatchConvTranspose(cout)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  got = ours.apply(params, x)
  assert got.shape == (shape[0], 2 * shape[1], 2 * shape[2], 2 * shape[3], cout)
  np.testing.assert_allclose(got, reference.apply(params, x), rtol=1e-5, atol=1e-5)


def test_every_conv_norm_normalises_each_conv_of_the_unet_and_the_heads_first():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 8, 3)) * 5 + 2
  c = x[..., :1]
  model = models.RSNet(base_filters=2, num_levels=2, norm='every_conv')
  variables = model.init(jax.random.key(1), x, c)
  _, state = model.apply(variables, x, c, capture_intermediates=True)
  inter = state['intermediates']
  convs = {name for name in inter['unet'] if re.fullmatch(r'.*_(conv\d|upsample)', name)}
  assert len(convs) == 2 + 2 * 2 + 3 * 2  # start, 2 encoder steps, 2 decoder steps with upsample
  for name in convs:
    y = inter['unet'][f'{name}_norm']['__call__'][0]
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1, atol=1e-2, err_msg=name)
  for head in ('segmentation', 'regression'):
    assert 'Conv_0_norm' in inter[head] and 'Conv_1_norm' not in inter[head]
  # the paper's placement has none of them, and the same parameters without affine norms
  paper_inter = models.RSNet(base_filters=2, num_levels=2).apply(
      variables, x, c, capture_intermediates=True)[1]['intermediates']
  assert not any(f'{name}_norm' in paper_inter['unet'] for name in convs)
  with pytest.raises(ValueError, match='model.norm'):
    models.RSNet(base_filters=2, num_levels=2, norm='batch').init(jax.random.key(1), x, c)


def test_paper_configuration_count():
  # k=4, 4 steps, 3 inputs + complementary, 4 classes; the paper reports 674,455 (see docs/architecture.md).
  counts = models.count_parameters('rsnet', 3, 4, 4, 4)
  assert counts['total'] == 675_953
  assert counts['decoder3'] == 125 * 64 * 32 + 32 + 27 * 64 * 32 + 32 + 27 * 32 * 32 + 32
  affine = models.count_parameters('rsnet', 3, 4, 4, 4, instance_norm_affine=True)
  assert affine['total'] - counts['total'] == 2 * (8 + 16 + 32 + 64) + 2 * (64 + 32 + 16 + 8)


def test_dropout_only_with_train_and_only_from_the_key():
  model = models.RSNet(base_filters=2, num_levels=2, dropout_rate=0.5)
  x = jax.random.uniform(jax.random.key(0), (1, 8, 8, 8, 3))
  c = x[..., :1]
  variables = jax.jit(model.init)(jax.random.key(1), x, c)  # jitted: op by op takes ~15 s
  apply = jax.jit(model.apply, static_argnames='train')
  a = apply(variables, x, c, train=True, rngs={'dropout': jax.random.key(5)})
  b = apply(variables, x, c, train=True, rngs={'dropout': jax.random.key(5)})
  other = apply(variables, x, c, train=True, rngs={'dropout': jax.random.key(6)})
  np.testing.assert_array_equal(a['synthesis'], b['synthesis'])
  assert not np.allclose(a['synthesis'], other['synthesis'])
  d1 = apply(variables, x, c)
  d2 = apply(variables, x, c)
  np.testing.assert_array_equal(d1['synthesis'], d2['synthesis'])
  with pytest.raises(Exception):  # dropout on without a key is an error, never hidden state
    model.apply(variables, x, c, train=True)


def test_regression_head_is_scheduled_after_the_segmentation_head():
  """Their full-resolution 16-channel intermediates are never live together (MC at the paper's
  crop in chunks of 4: XLA's plan 6.78 -> 6.03 GiB, bench/README.md)."""
  model = models.RSNet(base_filters=2, num_levels=2)
  x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 16, 3))
  params = jax.eval_shape(model.init, jax.random.key(1), x, x[..., :1])['params']  # shapes only
  forward = jax.jit(lambda p, k: model.apply({'params': p}, x, x[..., :1], train=True,
                                             rngs={'dropout': k}))
  hlo = forward.lower(params, jax.random.key(2)).compile().as_text()
  entry = hlo[hlo.index('\nENTRY'):].splitlines()  # in the order XLA runs them
  def convs(head):  # the lines that run the head's convs and matmuls
    pattern = re.compile(rf'/{head}/Conv_\d/(conv_general_dilated|dot_general)')
    return [i for i, line in enumerate(entry) if pattern.search(line)]

  seg, reg = convs('segmentation'), convs('regression')
  assert seg and reg and max(seg) < min(reg), (seg, reg)


@pytest.mark.slow  # compiles the network's gradient 3 times: left out of the quick tier
@pytest.mark.parametrize('remat', ['levels', 'convs'])
def test_remat_keeps_parameters_outputs_and_gradients(remat):
  # the same parameters, values and gradients; compiled, XLA fuses the two graphs differently
  # (float32 round-off: up to ~1.3e-6 of a leaf's largest gradient, in its sums over all voxels)
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 8, 3))
  c = x[..., :1]
  plain = models.RSNet(base_filters=2, num_levels=2)
  params = jax.jit(plain.init)(jax.random.key(1), x, c)['params']  # op by op: 17 s
  remat_model = models.RSNet(base_filters=2, num_levels=2, remat=remat)
  assert (jax.tree.structure(jax.eval_shape(remat_model.init, jax.random.key(1), x, c)['params'])
          == jax.tree.structure(params))

  def loss(model, p):
    out = model.apply({'params': p}, x, c, train=True, rngs={'dropout': jax.random.key(2)})
    return sum(jnp.sum(v**2) for v in out.values())

  (value, grads), (ref_value, ref_grads) = (
      jax.jit(jax.value_and_grad(functools.partial(loss, m)))(params) for m in (remat_model, plain))
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-6 * float(jnp.abs(b).max()))
  with pytest.raises(ValueError, match='model.remat'):
    models.RSNet(base_filters=2, num_levels=2, remat='all').init(jax.random.key(1), x, c)


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
  x = jax.random.normal(jax.random.key(0), (1, 16, 16, 16, 3))
  c = x[..., :1]
  plain = models.RSNet(base_filters=2, num_levels=2)
  params = jax.jit(plain.init)(jax.random.key(1), x, c)['params']
  bf16 = models.RSNet(base_filters=2, num_levels=2, dtype=jnp.bfloat16)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(
      jax.eval_shape(bf16.init, jax.random.key(1), x, c)['params']))
  out = jax.jit(bf16.apply)({'params': params}, x, c)
  ref = jax.jit(plain.apply)({'params': params}, x, c)
  for name in ref:
    assert out[name].dtype == jnp.float32
    err = float(jnp.abs(out[name] - ref[name]).max())
    assert 0 < err < 0.05 * float(jnp.abs(ref[name]).max())  # bf16 rounding, not another network


@pytest.mark.slow  # compiles the network's gradient twice: left out of the quick tier
def test_leaky_relu_keeps_the_parameters_and_passes_gradient_through_negative_units():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 8, 3))
  c = x[..., :1]
  params = jax.jit(models.RSNet(base_filters=2, num_levels=2).init)(jax.random.key(1), x,
                                                                    c)['params']
  leaky = models.RSNet(base_filters=2, num_levels=2, activation='leaky_relu')
  assert (jax.tree.structure(jax.eval_shape(leaky.init, jax.random.key(1), x, c)['params'])
          == jax.tree.structure(params))
  # every unit of the segmentation head's last hidden layer switched off (bias -100): its weights
  # get no gradient through a ReLU, and some through a leaky ReLU
  dead = jax.tree.map(lambda p: p, params)
  dead['segmentation']['Conv_2']['bias'] = jnp.full_like(params['segmentation']['Conv_2']['bias'],
                                                         -100.0)

  def grad_conv2(model):
    loss = lambda p: jnp.sum(model.apply({'params': p}, x, c)['logits']**2)
    return jax.jit(jax.grad(loss))(dead)['segmentation']['Conv_2']['kernel']

  assert float(jnp.abs(grad_conv2(models.RSNet(base_filters=2, num_levels=2))).max()) == 0
  assert float(jnp.abs(grad_conv2(leaky)).max()) > 0
  with pytest.raises(ValueError, match='model.activation'):
    models.RSNet(base_filters=2, num_levels=2, activation='tanh').init(jax.random.key(1), x, c)
