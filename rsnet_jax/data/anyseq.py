"""One RS-Net for whichever sequence is missing (``model.variant = 'anyseq'``, the BraSyn task).

The network is the paper's RS-Net with ``2 M`` input channels for ``M`` sequences: the ``M``
normalised sequences with the missing one zeroed, then ``M`` availability channels (1 = acquired,
constant over the volume). Its regression head sees the paper's complementary input of the missing
sequence (T1 <- T1ce, T2 <- FLAIR, T1ce <- T1, FLAIR <- T2) and synthesizes the missing one; its
segmentation head segments as RS-Net's does.

Training draws the missing sequence of each example from the step's key (`draw_missing`), so a
resumed run draws what an uninterrupted one does. Validation fixes one per case (`fixed_missing`);
prediction reads it off the case's files (`missing_in`).
"""

from __future__ import annotations

import dataclasses

import zlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError

Array = jax.Array
DRAW_STREAM = 0x616E79  # fold_in index of the draw's key, apart from the step's dropout key


def complementary_indices(modalities: tuple[str, ...]) -> np.ndarray:
  """``[M] int32``: for each sequence as the missing one, the index of its complementary input
  (`pipeline.DEFAULT_COMPLEMENTARY`, or the next sequence for one without a paper choice)."""
  index = {m: i for i, m in enumerate(modalities)}
  return np.array([index.get(pipeline.DEFAULT_COMPLEMENTARY.get(m), (i + 1) % len(modalities))
                   for i, m in enumerate(modalities)], np.int32)


def missing_probabilities(config: ml_collections.ConfigDict, num: int) -> np.ndarray:
  """``data.missing_probabilities`` (one per sequence of ``data.modalities``, summing to 1; ``()``
  = uniform) as ``[M] float32``."""
  p = np.asarray(config.data.get('missing_probabilities', ()) or np.full(num, 1 / num), np.float64)
  if p.shape != (num,) or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
    raise UserError(f'data.missing_probabilities {tuple(p.tolist())}: give {num} non-negative '
                    f'numbers summing to 1, one per sequence of data.modalities, or () for uniform')
  return p.astype(np.float32)


def draw_missing(key: Array, batch_size: int, probabilities: np.ndarray) -> Array:
  """``[B] int32``: the missing sequence of each example of a step whose key is ``key``."""
  return jax.random.choice(jax.random.fold_in(key, DRAW_STREAM), len(probabilities),
                           (batch_size,), p=jnp.asarray(probabilities)).astype(jnp.int32)


def mask(batch: dict[str, Array], missing: Array, complementary: np.ndarray) -> dict[str, Array]:
  """The network's view of ``batch`` with sequence ``missing [B]`` absent.

  Args:
    batch: ``inputs [B, D, H, W, M]``, every sequence (a missing one may hold anything).
    missing: ``[B]`` index of the missing sequence per example.
    complementary: `complementary_indices`.

  Returns:
    ``batch`` with ``inputs [B, D, H, W, 2 M]`` (masked sequences, availability),
    ``complementary [B, D, H, W, 1]`` and ``target [B, D, H, W, 1]`` (the missing sequence as
    given).
  """
  x = jnp.asarray(batch['inputs'])
  num = x.shape[-1]
  available = 1.0 - jax.nn.one_hot(missing, num, dtype=x.dtype)[:, None, None, None, :]
  pick = lambda index: jnp.take_along_axis(x, index[:, None, None, None, None], axis=-1)
  return dict(batch, inputs=jnp.concatenate([x * available, jnp.broadcast_to(available, x.shape)],
                                            -1),
              complementary=pick(jnp.asarray(complementary)[missing]), target=pick(missing))


def fixed_missing(case_id: str, num: int) -> int:
  """The sequence a validation or test case is scored without when one is not asked for: spread
  over the sequences by the case ID, the same in every run."""
  return zlib.crc32(case_id.encode()) % num


def missing_in(case: layouts.CaseFiles, modalities: tuple[str, ...]) -> str | None:
  """The one sequence of ``modalities`` that ``case`` lacks; None when it has all.

  Raises:
    UserError: naming the case's folder, when two or more are missing.
  """
  absent = [m for m in modalities if m not in case.files]
  if len(absent) > 1:
    raise UserError(f'{case.folder}: case {case.case_id} lacks {len(absent)} sequences '
                    f'({", ".join(absent)}); the anyseq model fills in one')
  return absent[0] if absent else None


def load_case(case: layouts.CaseFiles, task: pipeline.Task, missing: str | None,
              references: bool = True,
              whole_brain: bool = False) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
  """`pipeline.load_case` of ``case`` with ``missing`` absent (whether or not its file exists):
  the network's inputs (`mask`), and the ``target`` when the file exists and ``references``.
  ``missing=None`` (every task but ``anyseq``): the case as `pipeline.load_case` reads it."""
  if missing is None:
    return pipeline.load_case(case, task, references, whole_brain)
  index = task.inputs.index(missing)
  present = tuple(m for m in task.inputs if m != missing)
  with_target = references and missing in case.files
  view = dataclasses.replace(task, variant='rsnet', target=missing if with_target else None,
                             inputs=present, complementary=None)
  example, meta = pipeline.load_case(case, view, references, whole_brain)
  stacked = np.insert(example['inputs'], index, 0.0, axis=-1)
  masked = mask({'inputs': stacked[None]}, jnp.array([index]), complementary_indices(task.inputs))
  example.update(inputs=np.asarray(masked['inputs'][0]),
                 complementary=np.asarray(masked['complementary'][0]))
  return example, meta


def validate_cases(cases: list[layouts.CaseFiles],
                   modalities: tuple[str, ...]) -> tuple[list[layouts.CaseFiles], list[str]]:
  """`layouts.validate` of each case's present sequences; a case lacking two or more is refused
  with one line. Returns ``(valid cases, problems)``."""
  valid, problems = [], []
  for case in cases:
    try:
      missing = missing_in(case, modalities)
    except UserError as e:
      problems.extend(e.problems)
      continue
    found = layouts.validate(case, tuple(m for m in modalities if m != missing))
    problems.extend(found)
    if not found:
      valid.append(case)
  return valid, problems
