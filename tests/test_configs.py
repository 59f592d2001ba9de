"""configs/paper.py holds the paper's settings (Sec. II-III); configs/default.py departs from them
only where it names the departure."""

from configs import paper


def test_paper_config_holds_the_papers_settings():
  c = paper.get_config()
  assert (c.model.variant, c.model.base_filters, c.model.num_levels, c.model.dropout_rate,
          c.model.activation) == ('rsnet', 4, 4, 0.1, 'relu')
  assert (c.optim.learning_rate, c.optim.b1, c.optim.b2, c.optim.eps) == (2e-4, 0.9, 0.999, 1e-8)
  assert (c.optim.schedule, c.optim.warmup_steps, c.train.batch_size, c.train.num_epochs) == (
      'constant', 0, 1, 240)
  assert tuple(c.data.crop_shape) == (184, 200, 152) and c.loss.region == 'volume'
  assert c.uncertainty.num_mc_samples == 20
  assert not c.augment.random_crop and all(
      v == 0 for k, v in c.augment.items() if k.endswith('_probability'))


def _flat(d, prefix=''):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f'{prefix}{k}.') if isinstance(v, dict) else {f'{prefix}{k}': v})
  return out


def test_default_departs_from_the_paper_only_where_it_says():
  from configs import default  # pylint: disable=g-import-not-at-top
  ours, theirs = _flat(default.get_config().to_dict()), _flat(paper.get_config().to_dict())
  assert ours.keys() == theirs.keys()
  differ = {k for k in ours if ours[k] != theirs[k]}
  assert differ == {'loss.region', 'optim.learning_rate', 'optim.warmup_steps', 'optim.schedule',
                    'model.activation', 'model.norm', 'model.filters', 'model.upsample_kernel',
                    'loss.lambda_dice', 'loss.rep', 'model.segmentation_head',
                    'data.normalization', 'loss.lambda_synthesis'} | {
      f'augment.{name}_probability' for name in default.RECOMMENDED_AUGMENTATION}
  assert ours['loss.region'] == 'brain' and ours['optim.schedule'] == 'cosine'
