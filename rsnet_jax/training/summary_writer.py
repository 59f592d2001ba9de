"""TensorBoard event files without TensorFlow, and a console line for every write.

`SummaryWriter` has the methods of clu's ``MetricWriter`` that the training loop uses
(``write_hparams``, ``write_scalars``, ``write_images``, ``write_texts``, ``flush``, ``close``) and
writes the protos that TensorBoard reads with the ``tensorboard`` package's own event-file writer:
scalars as ``simple_value``, images as PNG, texts in the text plugin's format, hyper-parameters in
the hparams plugin's. ``tensorboard --logdir WORKDIR`` shows them.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any, Mapping

from absl import logging
import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.proto import tensor_pb2
from tensorboard.compat.proto import tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

Scalar = float | int | np.number


class SummaryWriter:
  """Writes ``logdir/events.out.tfevents.*`` (unless ``just_logging``) and logs each write."""

  def __init__(self, logdir: str, just_logging: bool = False):
    self._events = None if just_logging else EventFileWriter(logdir)

  def _write(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
    if self._events is not None:
      self._events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                             summary=summary_pb2.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, Scalar]) -> None:
    logging.info('[%d] %s', step, ', '.join(f'{k}={float(v):g}' for k, v in scalars.items()))
    self._write(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                       for k, v in scalars.items()])

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """``images``: tag -> ``[H, W, 3] uint8`` (or ``[1, H, W, 3]``), stored as PNG."""
    values = []
    for tag, image in images.items():
      image = np.asarray(image)
      image = image[0] if image.ndim == 4 else image
      buffer = io.BytesIO()
      Image.fromarray(image).save(buffer, format='PNG')
      values.append(summary_pb2.Summary.Value(tag=tag, image=summary_pb2.Summary.Image(
          height=image.shape[0], width=image.shape[1], colorspace=image.shape[2],
          encoded_image_string=buffer.getvalue())))
      logging.info('[%d] image %s %s', step, tag, image.shape)
    self._write(step, values)

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    """``texts``: tag -> Markdown, shown by TensorBoard's text plugin."""
    meta = text_metadata.create_summary_metadata(display_name=None, description=None)
    self._write(step, [summary_pb2.Summary.Value(
        tag=tag, metadata=meta, tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[text.encode()],
            tensor_shape=tensor_shape_pb2.TensorShapeProto())) for tag, text in texts.items()])

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """``hparams``: name -> bool, number or string (other values are written as JSON)."""
    hparams = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
               for k, v in hparams.items()}
    logging.info('[hyper-parameters] %s', hparams)
    if self._events is not None:
      self._events.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                             summary=hparams_summary.hparams_pb(hparams)))

  def flush(self) -> None:
    if self._events is not None:
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar series of the event files in ``logdir``: ``{tag: [(step, value), ...]}`` in step
  order. A resumed run's files are read as TensorBoard does: steps logged again after a restart
  replace the ones before it."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(logdir, size_guidance={'scalars': 0})
  events.Reload()
  return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
          for tag in events.Tags()['scalars']}
