"""Tables (Markdown, JSON) and figures (PNG via matplotlib)."""

from __future__ import annotations

import math
import os

import numpy as np

from rsnet_jax.runtime import files  # pylint: disable=g-bad-import-order

_SEG_COLORS = ['black', 'tab:red', 'tab:green', 'gold']  # background, labels 1, 2, 4 (class order)


def _pyplot():
  """matplotlib's pyplot (Agg), imported on first use: 0.7 s that runs without figures skip."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def tumour_slice(example: dict[str, np.ndarray]) -> int:
  """Axial slice with the most tumour (or the middle slice)."""
  if 'labels' in example and (example['labels'] > 0).any():
    return int(np.argmax((example['labels'] > 0).sum(axis=(0, 1))))
  return example['inputs'].shape[2] // 2


def montage(example: dict[str, np.ndarray], outputs: dict[str, np.ndarray], task, path: str,
            title: str = '') -> None:
  """Writes one row of axial panels: real target, synthesized, |error|, true and predicted labels.

  Args:
    example: one case from the pipeline (no batch axis).
    outputs: its predictions as `predict.predict_example` returns them (no batch axis).
  """
  z = tumour_slice(example)
  panels = []
  if 'synthesis' in outputs:
    synth = outputs['synthesis'][..., z, 0]
    if 'target' in example:
      real = example['target'][..., z, 0]
      panels += [(f'real {task.target}', real, 'gray'), (f'synthesized {task.target}', synth, 'gray'),
                 ('|error|', np.abs(real - synth), 'magma')]
    else:
      panels.append((f'synthesized {task.target}', synth, 'gray'))
  else:
    panels.append((task.inputs[0], example['inputs'][..., z, 0], 'gray'))
  if 'labels' in example:
    panels.append(('true labels', example['labels'][..., z], _SEG_COLORS))
  if 'probabilities' in outputs:
    panels.append(('predicted labels', np.argmax(outputs['probabilities'][..., z, :], -1),
                   _SEG_COLORS))
  plt = _pyplot()
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  # Grey panels share [0, 1] (brats2017's range), widened to the first one's range (zscore's).
  first = next(img for _, img, cmap in panels if cmap == 'gray')
  grey = (min(0.0, float(first.min())), max(1.0, float(first.max())))
  fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
  for ax, (name, img, cmap) in zip(np.atleast_1d(axes), panels):
    seg = cmap is _SEG_COLORS
    vmin, vmax = (0, 3) if seg else grey if cmap == 'gray' else (0, max(float(img.max()), 1e-6))
    ax.imshow(np.rot90(img), cmap=ListedColormap(cmap) if seg else cmap, vmin=vmin, vmax=vmax,
              interpolation='nearest')
    ax.set_title(name, fontsize=9)
    ax.axis('off')
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def augmentation_montage(rows: list[tuple[str, dict[str, np.ndarray]]], task, path: str) -> None:
  """Writes one row of axial panels per ``(name, example)``: each input sequence, the synthesis
  target and the labels, at the example's slice with the most tumour (the preview of
  ``config.augment``: the same training examples as read and as augmented)."""
  plt = _pyplot()
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  names = list(task.inputs) + ([f'target {task.target}'] if task.target else []) + ['labels']
  fig, axes = plt.subplots(len(rows), len(names), figsize=(2.2 * len(names), 2.3 * len(rows)),
                           squeeze=False)
  for r, (row_name, example) in enumerate(rows):
    z = tumour_slice(example)
    images = [example['inputs'][..., z, c] for c in range(len(task.inputs))]
    images += [example['target'][..., z, 0]] if task.target and 'target' in example else []
    images.append(example['labels'][..., z] if 'labels' in example else None)
    for c, (ax, img) in enumerate(zip(axes[r], images)):
      ax.axis('off')
      if img is None:
        continue
      seg = c == len(images) - 1
      ax.imshow(np.rot90(img), cmap=ListedColormap(_SEG_COLORS) if seg else 'gray',
                vmin=0 if seg else min(0.0, float(img.min())),
                vmax=3 if seg else max(float(img.max()), 1e-6), interpolation='nearest')
      ax.set_title(f'{row_name}: {names[c]}' if c == 0 else names[c], fontsize=8)
  _save(fig, path)


def read_png(path: str) -> np.ndarray:
  """``[H, W, 3] uint8`` pixels of a PNG (for TensorBoard image summaries)."""
  img = _pyplot().imread(path)[..., :3]
  return (img * 255).round().astype(np.uint8) if img.dtype != np.uint8 else img


def mean_std(values: list[float]) -> tuple[float, float]:
  finite = [v for v in values if math.isfinite(v)]
  if not finite:
    return float('nan'), float('nan')
  return float(np.mean(finite)), float(np.std(finite))


def write_tables(per_case: dict[str, dict[str, float]], out_dir: str, name: str) -> dict:
  """Writes ``NAME.json`` (per case and summary) and ``NAME.md`` (a row per case, then mean +- std).

  Returns the summary ``{metric: {'mean', 'std'}}``.
  """
  os.makedirs(out_dir, exist_ok=True)
  columns = sorted({k for row in per_case.values() for k in row})
  summary = {}
  for c in columns:
    m, s = mean_std([row[c] for row in per_case.values() if c in row])
    summary[c] = {'mean': m, 'std': s}
  files.write_json(os.path.join(out_dir, f'{name}.json'), {'per_case': per_case, 'summary': summary})
  lines = ['| case | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
  for case_id, row in per_case.items():
    lines.append(f'| {case_id} | ' + ' | '.join(f'{row.get(c, float("nan")):.4f}' for c in columns)
                 + ' |')
  lines.append('| **mean +- std** | ' + ' | '.join(
      f'{summary[c]["mean"]:.4f} +- {summary[c]["std"]:.4f}' for c in columns) + ' |')
  files.write_text(os.path.join(out_dir, f'{name}.md'), '\n'.join(lines) + '\n')
  return summary


def format_summary(summary: dict) -> str:
  """One line: ``metric mean +- std, ...``."""
  return ', '.join(f'{k} {v["mean"]:.4f} +- {v["std"]:.4f}' for k, v in summary.items())


def uncertainty_figure(columns: list[tuple[str, np.ndarray | None, np.ndarray, np.ndarray]],
                       z: int, path: str, title: str = '') -> None:
  """The paper's Fig. 3: rows real, synthesized (MC mean) and MC variance; a column per sequence.

  Args:
    columns: ``(sequence, real [X, Y, Z] or None, mean [X, Y, Z], variance [X, Y, Z])``.
    z: the axial slice shown.
  """
  vmax = max(max(float(c[3][..., z].max()) for c in columns), 1e-12)
  plt = _pyplot()
  fig, axes = plt.subplots(3, len(columns), figsize=(2.8 * len(columns), 8.0), squeeze=False)
  for j, (name, real, mean, variance) in enumerate(columns):
    rows = [('real', real, 'gray', 1.0), ('synthesized', mean, 'gray', 1.0),
            ('variance', variance, 'inferno', vmax)]
    for i, (label, img, cmap, top) in enumerate(rows):
      ax = axes[i, j]
      ax.axis('off')
      if img is None:
        continue
      shown = ax.imshow(np.rot90(img[..., z]), cmap=cmap, vmin=0, vmax=top, interpolation='nearest')
      ax.set_title(f'{label} {name}', fontsize=9)
      if label == 'variance':
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def sparsification_plot(mean: dict, per_case: list[dict], path: str) -> None:
  """Sparsification (solid) and oracle (dashed) curves: ``mean`` in colour with its AUSE, each of
  ``per_case`` thin and grey (each a `calibration.sparsification` result)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.0, 3.8))
  for c in per_case:
    ax.plot(c['fractions'], c['curve'], color='0.75', linewidth=0.6)
  ax.plot(mean['fractions'], mean['curve'], color='C0',
          label=f'MC variance, mean of {len(per_case)} cases (AUSE {mean["ause"]:.3f})')
  ax.plot(mean['fractions'], mean['oracle'], color='C0', linestyle='--', label='oracle')
  ax.set_xlabel('fraction of brain voxels removed (most uncertain first)')
  ax.set_ylabel('remaining squared error / mean')
  ax.set_title('sparsification (grey: single cases)', fontsize=10)
  ax.legend(fontsize=7)
  _save(fig, path)


def methods_figures(overall: dict[str, dict], out_dir: str) -> list[str]:
  """Uncertainty methods side by side, from each method's study ``overall`` (`uncertainty_study`):
  ``qu_brats_curves.png`` (Dice, filtered-TP and filtered-TN ratios against the threshold, per
  region), ``sparsification_methods.png`` and ``reliability_methods.png``. Returns the paths."""
  plt = _pyplot()
  paths = []
  with_qu = {m: o for m, o in overall.items() if 'qu_brats_curves' in o}
  if with_qu:
    regions = list(next(iter(with_qu.values()))['qu_brats_curves'])
    fig, axes = plt.subplots(3, len(regions), figsize=(3.2 * len(regions), 7.5), sharex=True,
                             squeeze=False)
    for i, (method, o) in enumerate(with_qu.items()):
      x = 100 - np.asarray(o['qu_brats_thresholds'])
      for col, region in enumerate(regions):
        for row, name in enumerate(('dice', 'ftp_ratio', 'ftn_ratio')):
          axes[row, col].plot(x, o['qu_brats_curves'][region][name], color=f'C{i}', label=method)
          axes[row, col].set_ylim(-0.02, 1.02)
          if col == 0:
            axes[row, col].set_ylabel({'dice': 'Dice', 'ftp_ratio': 'filtered TP ratio',
                                       'ftn_ratio': 'filtered TN ratio'}[name])
        axes[0, col].set_title(region)
        axes[2, col].set_xlabel('100 - uncertainty threshold')
    axes[0, 0].legend(fontsize=7)
    paths.append(os.path.join(out_dir, 'qu_brats_curves.png'))
    _save(fig, paths[-1])
  with_sparsification = {m: o for m, o in overall.items() if 'sparsification_mean' in o}
  if with_sparsification:
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    for i, (method, o) in enumerate(with_sparsification.items()):
      c = o['sparsification_mean']
      ax.plot(c['fractions'], c['curve'], color=f'C{i}', label=f'{method} (AUSE {c["ause"]:.3f})')
      ax.plot(c['fractions'], c['oracle'], color=f'C{i}', linestyle=':', linewidth=0.8)
    paths.append(_finish(fig, ax, 'fraction of brain voxels removed (most uncertain first)',
                         'remaining squared error / mean',
                         'sparsification of the synthesis (dotted: oracles)',
                         os.path.join(out_dir, 'sparsification_methods.png')))
  with_bins = {m: o for m, o in overall.items() if 'reliability_bins' in o}
  if with_bins:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color='0.6', linestyle='--', linewidth=0.8)
    for i, (method, o) in enumerate(with_bins.items()):
      b = {k: np.asarray(v) for k, v in o['reliability_bins'].items()}
      used = b['count'] > 0
      ax.plot(b['confidence_sum'][used] / b['count'][used], b['correct_sum'][used] /
              b['count'][used], marker='o', markersize=3, color=f'C{i}',
              label=f'{method} (ECE {o["ece_pooled"]:.4f})')
    paths.append(_finish(fig, ax, 'confidence (mean softmax)', 'accuracy',
                         'reliability of the segmentation',
                         os.path.join(out_dir, 'reliability_methods.png')))
  return paths


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, path: str) -> str:
  """Labels, title and legend of a one-panel figure, saved to ``path`` (returned)."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7)
  _save(fig, path)
  return path


def reliability_plot(bins: dict[str, np.ndarray], ece: float, path: str) -> None:
  """Reliability diagram: accuracy per confidence bin against the diagonal, voxel counts below."""
  n = bins['count']
  edges = np.linspace(0, 1, len(n) + 1)
  with np.errstate(invalid='ignore', divide='ignore'):
    accuracy = bins['correct_sum'] / n
    confidence = bins['confidence_sum'] / n
  plt = _pyplot()
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.2, 5.2), sharex=True,
                                    gridspec_kw={'height_ratios': [3, 1]})
  width = edges[1] - edges[0]
  top.bar(edges[:-1], np.nan_to_num(accuracy), width=width, align='edge', edgecolor='k',
          label='accuracy')
  top.plot(confidence, accuracy, 'o', color='C3', markersize=3, label='mean confidence')
  top.plot([0, 1], [0, 1], 'k--', linewidth=0.8)
  top.set_ylabel('accuracy')
  top.set_title(f'segmentation reliability (ECE {ece:.4f})', fontsize=10)
  top.legend(fontsize=7, loc='upper left')
  bottom.bar(edges[:-1], n, width=width, align='edge', edgecolor='k', color='C7')
  bottom.set_yscale('log')
  bottom.set_xlabel('confidence (top-class probability)')
  bottom.set_ylabel('voxels')
  _save(fig, path)


def grouped_bars(rows: dict[str, dict[str, dict[str, float]]], metrics: list[str],
                 labels: list[str], path: str, title: str = '') -> None:
  """Bars of ``rows[row][metric]['mean']`` with ``std`` whiskers: a group per row, a colour per
  metric (shown as ``labels``)."""
  names = list(rows)
  width = 0.8 / len(metrics)
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.6))
  x = np.arange(len(names))
  for j, (metric, label) in enumerate(zip(metrics, labels)):
    means = [rows[n][metric]['mean'] for n in names]
    stds = [rows[n][metric]['std'] for n in names]
    ax.bar(x + (j - (len(metrics) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
           label=label)
  ax.set_xticks(x, names, rotation=30, ha='right', fontsize=8)
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=10)
  _save(fig, path)


def roc_panels(curves: dict[str, dict[str, np.ndarray]], panels: list[str], path: str,
               title: str = '') -> None:
  """TPR against FDR: a panel per lesion-size bin, a line per model; ``curves[model][bin]`` is
  ``[T, 2]`` rows (TPR, FDR) over thresholds (as `metrics.lesion_roc` gives)."""
  colors = ['tab:red', 'tab:blue', 'gold', 'tab:green']
  plt = _pyplot()
  fig, axes = plt.subplots(2, (len(panels) + 1) // 2, figsize=(7.0, 6.0), squeeze=False)
  for ax, panel in zip(axes.ravel(), panels):
    for color, (model, bins) in zip(colors, curves.items()):
      c = bins[panel][np.argsort(bins[panel][:, 1], kind='stable')]
      ax.plot(c[:, 1], c[:, 0], '.-', color=color, label=model)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='FDR', ylabel='TPR', title=f'{panel} lesions')
    ax.axvline(0.2, color='gray', lw=0.5, ls=':')
    ax.legend(fontsize=7, loc='lower right')
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def learning_curves(series: dict[str, dict[str, list[tuple[int, float]]]],
                    panels: list[tuple[str, str]], path: str, title: str = '') -> None:
  """A panel per ``(tag, label)`` of ``panels``, a line per model: ``series[model][tag]`` is the
  ``(step, value)`` list of `summary_writer.read_scalars`. Loss panels (tags ending in a loss
  name) get a log scale; a model without a tag has no line in that panel."""
  colors = dict(zip(series, ['tab:red', 'tab:blue', 'tab:green', 'gold', 'tab:purple']))
  cols = 3
  plt = _pyplot()
  fig, axes = plt.subplots(-(-len(panels) // cols), cols, figsize=(10.5, 2.8 * -(-len(panels) //
                                                                                  cols)),
                           squeeze=False)
  for ax, (tag, label) in zip(axes.ravel(), panels):
    for model, tags in series.items():
      points = np.array(tags.get(tag, []), dtype=np.float64).reshape(-1, 2)
      if len(points):
        ax.plot(points[:, 0], points[:, 1], '-', lw=1.2, color=colors[model], label=model)
    if tag.endswith(('loss', 'wmse', 'wcce', 'dice')):
      ax.set_yscale('log')
    ax.set(xlabel='step', title=label)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=7)
  for ax in axes.ravel()[len(panels):]:
    ax.axis('off')
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def per_case_points(groups: dict[str, dict[str, list[float]]], ylabel: str, path: str,
                    title: str = '') -> None:
  """A panel per group (e.g. target), a column of points per method (one per case) with its mean
  as a bar: ``groups[group][method]`` is the list of per-case values."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), squeeze=False)
  for ax, (group, methods) in zip(axes[0], groups.items()):
    for x, (method, values) in enumerate(methods.items()):
      jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
      ax.plot(x + jitter, values, 'o', ms=3.5, alpha=0.7)
      ax.plot([x - 0.3, x + 0.3], [np.mean(values)] * 2, 'k-', lw=1.5)
    ax.set_xticks(range(len(methods)), list(methods), fontsize=8)
    ax.set(title=group, ylabel=ylabel)
    ax.title.set_fontsize(10)
    ax.grid(axis='y', alpha=0.3)
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def curves_and_levels(panels: dict[str, tuple[dict[str, list[tuple[int, float]]],
                                                dict[str, float]]],
                      ylabel: str, path: str, title: str = '') -> None:
  """A panel per key: ``(curves, levels)``, each curve ``[(step, value)]`` a line (e.g. a network's
  validation PSNR per fold), each level a dashed horizontal line (e.g. a method without steps)."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), squeeze=False)
  for ax, (name, (curves, levels)) in zip(axes[0], panels.items()):
    for label, points in curves.items():
      points = np.array(points, dtype=np.float64).reshape(-1, 2)
      ax.plot(points[:, 0], points[:, 1], '-o', ms=3, lw=1.2, label=label)
    for j, (label, value) in enumerate(levels.items()):
      ax.axhline(value, ls='--', lw=1, color=f'C{len(curves) + j}', label=label)
    ax.set(xlabel='step', ylabel=ylabel, title=name)
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def image_grid(rows: list[tuple[str, list[tuple[str, np.ndarray, str]]]], path: str,
               title: str = '') -> None:
  """A grid of axial panels: ``rows`` of ``(row label, [(panel title, image [X, Y], cmap)])``;
  grey images share [0 (or the first row's darkest grey, if negative: zscore), the first row's
  brightest grey], error maps [0, the largest error]."""
  grey = [img for _, panels in rows[:1] for _, img, cmap in panels if cmap == 'gray']
  gmax = max([float(np.percentile(img, 99.5)) for img in grey] + [1e-6])
  gmin = min([float(np.percentile(img, 0.5)) for img in grey] + [0.0])  # < 0: zscore
  emax = max([float(img.max()) for _, panels in rows for _, img, cmap in panels
              if cmap != 'gray'] + [1e-6])
  cols = max(len(panels) for _, panels in rows)
  plt = _pyplot()
  fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.3 * len(rows)), squeeze=False)
  for r, (label, panels) in enumerate(rows):
    for c, ax in enumerate(axes[r]):
      ax.axis('off')
      if c < len(panels):
        name, img, cmap = panels[c]
        ax.imshow(np.rot90(img), cmap=cmap, vmin=gmin if cmap == 'gray' else 0,
                  vmax=gmax if cmap == 'gray' else emax,
                  interpolation='nearest')
        ax.set_title(name, fontsize=8)
    axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, rotation=90,
                    va='center', ha='right', fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  _save(fig, path)


def _save(fig, path: str) -> None:
  fig.tight_layout()
  with files.atomic_write(path, 'wb') as f:
    fig.savefig(f, dpi=100, format='png')
  _pyplot().close(fig)
