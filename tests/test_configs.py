"""configs/paper.py holds the paper's settings (Sec. II-III), whatever the default recommends."""

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
