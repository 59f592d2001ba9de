"""The embedded default: 16 small synthetic cases, a k=4 RS-Net trained for 720 steps on the CPU,
then evaluation and prediction of the 2 held-out cases. Under 5 minutes on 2 cores.

Run: python -m rsnet_jax.main --config configs/demo.py --workdir runs/demo

Departures from the paper's settings, each measured in docs/training.md ("Learning notes"): the
loss counts only voxels inside the brain (on whole volumes the segmentation head collapses to
background), a 20-step warm-up and a cosine decay of the learning rate, and a 10x higher rate than
the paper's.
"""

from configs import paper


def get_config():
  config = paper.get_config()
  config.data.synthetic_cases = 16
  config.data.synthetic_shape = (40, 40, 36)  # the BraTS field of view at 6 x 6 x 4.3 mm
  config.data.crop_shape = (32, 32, 32)  # around the brain, as the paper's crop
  config.data.val_fraction = 0.125
  config.data.test_fraction = 0.125
  config.loss.region = 'brain'
  config.loss.decay_rate = 0.9
  config.optim.learning_rate = 2e-3
  config.optim.warmup_steps = 20
  config.optim.schedule = 'cosine'
  config.train.num_epochs = 60
  config.train.log_every_steps = 60
  config.train.eval_every_epochs = 20
  config.train.predict_test_cases = True
  config.predict.num_mc_samples = 4
  return config
