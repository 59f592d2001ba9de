"""The embedded default: a few small synthetic cases, a k=4 RS-Net trained for a few epochs on the
CPU, then evaluation and prediction of a held-out case. Under 5 minutes on 2 cores.

Run: python -m rsnet_jax.main --config configs/demo.py --workdir runs/demo
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.synthetic_cases = 8
  config.data.synthetic_shape = (32, 32, 32)  # the BraTS field of view at 7.5 x 7.5 x 4.8 mm
  config.data.crop_shape = ()
  config.data.val_fraction = 0.125
  config.data.test_fraction = 0.125
  config.loss.decay_rate = 0.8
  config.optim.learning_rate = 2e-3
  config.train.num_epochs = 20
  config.train.log_every_steps = 12
  config.train.eval_every_epochs = 5
  config.train.predict_test_cases = True
  config.predict.num_mc_samples = 4
  return config
