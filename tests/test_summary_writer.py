"""TensorBoard event files without TensorFlow, read back with TensorBoard's own reader."""

import os
import subprocess
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

from rsnet_jax.training import summary_writer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_scalars_images_texts_and_hparams_read_back(tmp_path):
  writer = summary_writer.SummaryWriter(str(tmp_path))
  writer.write_hparams({'optim.learning_rate': 2e-3, 'model.variant': 'rsnet', 'data.crop': (1, 2)})
  for step in (1, 2, 3):
    writer.write_scalars(step, {'train_loss': 1.0 / step, 'steps_per_sec': np.float32(2.5)})
  image = np.zeros((20, 30, 3), np.uint8)
  image[5:10, :, 0] = 255
  writer.write_images(3, {'val_montage': image[None]})
  writer.write_texts(0, {'config': 'seed: 0'})
  writer.close()
  events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={'images': 0,
                                                                            'tensors': 0})
  events.Reload()
  assert [(e.step, round(e.value, 6)) for e in events.Scalars('train_loss')] == [
      (1, 1.0), (2, 0.5), (3, 0.333333)]
  (montage,) = events.Images('val_montage')
  assert (montage.step, montage.width, montage.height) == (3, 30, 20)
  assert events.Tensors('config')[0].tensor_proto.string_val == [b'seed: 0']
  assert '_hparams_/session_start_info' in events.PluginTagToContent('hparams')


def test_just_logging_writes_no_file(tmp_path):
  writer = summary_writer.SummaryWriter(str(tmp_path), just_logging=True)
  writer.write_scalars(1, {'loss': 1.0})
  writer.close()
  assert not os.listdir(tmp_path)


def test_the_package_imports_without_tensorflow():
  code = ('import sys; sys.modules["tensorflow"] = None\n'
          'import pkgutil, importlib, rsnet_jax, configs\n'
          'for m in pkgutil.walk_packages(rsnet_jax.__path__, "rsnet_jax."):\n'
          '  importlib.import_module(m.name)\n'
          'print("ok")')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr[-2000:]
