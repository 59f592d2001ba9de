"""The embedded default: a few small synthetic cases, a k=4 RS-Net trained for a few epochs on the
CPU, then evaluation and prediction of a held-out case. Under 5 minutes on 2 cores.

Run: python -m rsnet_jax.main --config configs/demo.py --workdir runs/demo
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.synthetic_cases = 12
  config.data.synthetic_shape = (32, 32, 32)  # the BraTS field of view at 7.5 x 7.5 x 4.8 mm
  config.data.crop_shape = ()
  config.data.val_fraction = 0.0834  # 10 train, 1 validation, 1 test case
  config.data.test_fraction = 0.0834
  config.loss.decay_rate = 0.8
  # Ours, not the paper's (which takes 55,000 steps at 2e-4): 10x its rate, warmed up over 50 steps
  # and decayed along a cosine, so that 600 steps learn both tasks.
  config.optim.learning_rate = 2e-3
  config.optim.warmup_steps = 50
  config.optim.schedule = 'cosine'
  config.optim.end_lr_fraction = 0.05
  config.train.num_epochs = 60
  config.train.log_every_steps = 50
  config.train.eval_every_epochs = 10
  config.train.predict_test_cases = True
  config.predict.num_mc_samples = 4
  return config
