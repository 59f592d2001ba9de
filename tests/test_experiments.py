"""The paper's protocols: cross-validation folds, the swap tables, and both experiments end to end
through the command line at tiny size."""

import json
import os
import subprocess
import sys

import pytest

from rsnet_jax.errors import UserError
from rsnet_jax.experiments import crossval
from rsnet_jax.experiments import generalization
from rsnet_jax.experiments import swap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.model.base_filters=2', '--config.model.num_levels=2', '--config.model.filters=()',
        '--config.data.synthetic_shape=(16,16,16)', '--config.data.crop_shape=()',
        '--config.train.num_epochs=1', '--config.train.log_every_steps=1']
# Four cases: two to train on, one to validate, one to test.
FOUR_CASES = ('--config.data.synthetic_cases=4', '--config.data.val_fraction=0.25',
              '--config.data.test_fraction=0.25')


def _experiment(tmp_path, table, *args):
  """Runs ``configs/experiments/<table>.py`` at tiny size; returns its workdir."""
  workdir = tmp_path / table
  cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', f'configs/experiments/{table}.py',
         '--workdir', str(workdir), *TINY, *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def test_folds_are_disjoint_and_cover_the_test_cases():
  cases = [f'case{i:02d}' for i in range(54)]

  class Case(str):
    case_id = property(str.__str__)

  cases = [Case(c) for c in cases]
  folds = crossval.folds(cases, 5, 6, 6, seed=0)
  assert len(folds) == 5
  tested = []
  for fold in folds:
    sizes = {k: len(v) for k, v in fold.items()}
    assert sizes == {'test': 6, 'val': 6, 'train': 42}  # the paper's 42 / 6 / 6
    assert not set(fold['test']) & set(fold['val'])
    assert set(fold['train']) == set(cases) - set(fold['test']) - set(fold['val'])
    tested += fold['test']
  assert len(set(tested)) == 30  # each fold tests other cases
  assert crossval.folds(cases, 5, 6, 6, seed=0) == folds
  assert crossval.folds(cases, 5, 6, 6, seed=1) != folds
  with pytest.raises(UserError, match='cannot give 5 folds'):
    crossval.folds(cases[:20], 5, 6, 6, seed=0)


def test_swap_table_marks_each_row_like_the_paper():
  stat = {'mean': 0.5, 'std': 0.1}
  row = {k: stat for k in ('dice_ET', 'dice_WT', 'dice_TC', 'hd95_ET', 'hd95_WT', 'hd95_TC')}
  summary = {'real': row, 't1ce RS-Net': row, 't1ce R-Net': row, 't1ce RS-Net segmentation': row}
  text = swap._swap_table(summary, list(summary), 'caption', 'test', 3)  # pylint: disable=protected-access
  body = [line for line in text.splitlines() if line.startswith('| ')][1:]
  assert [line.split(' | ')[:4] for line in body] == [
      ['| X', 'X', 'X', 'X'], ['| X', 'X', 'X', 'RS'], ['| X', 'X', 'X', 'R'], ['| X', 'X', 'X', 'x']]
  assert '50.0 +- 10.0 | 50.0 +- 10.0 | 50.0 +- 10.0 | 0.5 +- 0.1' in body[0]


@pytest.mark.slow
def test_table2_swap_protocol_end_to_end(tmp_path):
  # one target (the anyseq comparison below runs the same protocol code for another model kind)
  workdir = _experiment(tmp_path, 'table2', *FOUR_CASES, "--config.experiment.targets=('flair',)")
  assert {'snet', 'rsnet_flair', 'rnet_flair', 'table2.md', 'table3.md', 'table4.md', 'swap.json',
          'swap_dice.png'} <= set(os.listdir(workdir))
  record = json.loads((workdir / 'swap.json').read_text())
  assert record['split'] == 'test' and record['cases'] == 1
  assert set(record['summary']) == {'real', 'flair RS-Net', 'flair R-Net',
                                    'flair RS-Net segmentation'}
  (case,) = record['per_case'].values()
  assert 0 <= case['flair R-Net']['dice_WT'] <= 1 and case['flair R-Net']['psnr_brain'] > 0
  rows = lambda name: [l for l in (workdir / name).read_text().splitlines() if l.startswith('| ')]
  assert len(rows('table2.md')) == 1 + 1 + 1 and len(rows('table3.md')) == 1 + 1 + 2  # head, real
  assert rows('table4.md')[-1].startswith('| X | X | x | X |')  # FLAIR: the RS-Net's own head


@pytest.mark.slow
def test_table1_cross_validation_end_to_end_on_brats2015_mha(tmp_path):
  workdir = _experiment(tmp_path, 'table1', '--config.data.synthetic_cases=5',
                        '--config.experiment.folds=2', '--config.experiment.test_cases=1',
                        '--config.experiment.val_cases=1', '--config.baseline.replica.trees=3',
                        '--config.baseline.lsdn.steps=20', '--config.baseline.cnn2d.steps=5',
                        '--config.baseline.cnn2d.features=4')
  assert os.listdir(workdir / 'data' / 'brats_synth_pat0000_1')[0].startswith('VSD.Brain')
  record = json.loads((workdir / 'crossval.json').read_text())
  assert set(record['summary']) == {'t2', 'flair'}
  methods = ['replica', 'lsdn', 'cnn2d', 'rsnet']
  assert list(record['summary']['t2']) == methods
  for method in methods:
    assert len(record['per_case']['t2'][method]) == 2  # one test case per fold
    assert sorted(r['fold'] for r in record['per_case']['t2'][method].values()) == [0, 1]
  assert {'fold0_t2', 'fold1_flair_replica', 'fold1_flair_cnn2d', 'table1_montage.png',
          'crossval.png'} <= set(os.listdir(workdir))
  table = (workdir / 'table1.md').read_text()
  assert '**T1 -> T2**' in table and '**T1 -> FLAIR**' in table
  assert '| | REPLICA | LSDN | 2D CNN | RS-Net |' in table and '2-fold cross-validation' in table
  assert '| paper: PSNR (dB) | 28.32 +- 1.38 | 29.68 +- 1.56 | 30.32 +- 1.61 | 30.88 +- 1.84 |' in table


@pytest.mark.slow
def test_table5_lesion_protocol_end_to_end_on_ms_cases(tmp_path):
  workdir = _experiment(tmp_path, 'table5', *FOUR_CASES,
                        "--config.experiment.targets=('flair',)")
  assert {'snet', 'rsnet_flair', 'rnet_flair', 'table5.md', 'lesions.json',
          'fig4_flair.png'} <= set(os.listdir(workdir))
  assert sorted(os.listdir(workdir / 'data' / 'MS_00000')) == [
      f'MS_00000_{k}.nii.gz' for k in ('flair', 'pd', 'seg', 't1', 't2')]
  record = json.loads((workdir / 'lesions.json').read_text())
  assert set(record['curves']) == {'real', 'flair RS-Net', 'flair R-Net',
                                   'flair RS-Net segmentation'}
  assert len(record['curves']['real']['small']) == len(record['thresholds']) == 19
  for row in record['tpr_at_fdr']['flair'].values():
    assert set(row) == {'all', 'large', 'medium', 'small'}
    assert all(0 <= v <= 1 for v in row.values())
  table = (workdir / 'table5.md').read_text()
  assert '| 3 real + 1 RS-Net synthesized |' in table and 'FLAIR synthesis: Small' in table


@pytest.mark.slow
def test_convergence_study_end_to_end(tmp_path):
  workdir = _experiment(tmp_path, 'convergence', *FOUR_CASES,
                        '--config.train.num_epochs=3')
  assert {'rsnet', 'rnet', 'snet', 'learning_curves.png', 'convergence.md',
          'convergence.json'} <= set(os.listdir(workdir))
  record = json.loads((workdir / 'convergence.json').read_text())
  assert record['split'] == 'test' and record['cases'] == 1
  curves = record['curves']
  assert [s for s, _ in curves['RS-Net']['val_dice_WT']] == [2, 4, 6]  # every epoch (2 steps)
  assert [s for s, _ in curves['R-Net']['val_psnr_brain']] == [2, 4, 6]
  assert 'val_psnr_brain' not in curves['S-Net'] and 'val_dice_WT' not in curves['R-Net']
  assert set(record['summary']['snet']) >= {'dice_WT', 'hd95_ET'}
  assert 'psnr_tumour' in record['summary']['rnet'] and 'dice_WT' not in record['summary']['rnet']
  table = (workdir / 'convergence.md').read_text()
  assert '| RS-Net |' in table and '| R-Net | - | - | - |' in table
  assert "S-Net's Dice (WT): RS-Net" in table and 'in the tumour (PSNR, dB): RS-Net' in table


@pytest.mark.slow
def test_anyseq_comparison_end_to_end(tmp_path):
  workdir = _experiment(tmp_path, 'anyseq', *FOUR_CASES, "--config.experiment.targets=('flair',)")
  assert {'snet', 'anyseq', 'rsnet_flair', 'anyseq.md', 'anyseq.json',
          'anyseq.png'} <= set(os.listdir(workdir))
  record = json.loads((workdir / 'anyseq.json').read_text())
  assert record['split'] == 'test' and record['cases'] == 1
  assert set(record['summary']) == {'real'} | {f'flair {m}{s}' for m in ('RS-Net', 'anyseq')
                                               for s in ('', ' segmentation')}
  (case,) = record['per_case'].values()
  assert case['flair anyseq']['psnr_brain'] > 0 and 0 <= case['flair anyseq']['dice_WT'] <= 1
  assert 'ssim_tumour' in case['flair anyseq']
  # the anyseq model trained as many steps as each RS-Net
  steps = {m: sorted(int(s) for s in os.listdir(workdir / m / 'checkpoints') if s.isdigit())[-1]
           for m in ('anyseq', 'rsnet_flair')}
  assert steps['anyseq'] == steps['rsnet_flair'] > 0
  table = (workdir / 'anyseq.md').read_text()
  rows = [l for l in table.splitlines() if l.startswith('| ')]
  assert len(rows) == 1 + 2 and rows[-1].startswith('| FLAIR | anyseq |')
  assert 'Where the one anyseq model is worse than the per-target RS-Net' in table


@pytest.mark.parametrize('models,seeds,message', [
    ((), (), 'experiment.models must name some of'),
    (('augmented',), (), 'experiment.models must name some of'),
    (('augmentation',), (1, 1), 'experiment.seeds must be distinct integers'),
    (('augmentation',), (1, 0.5), 'experiment.seeds must be distinct integers')])
def test_generalization_check_refuses_bad_choices_before_any_work(tmp_path, models, seeds,
                                                                  message):
  from configs.experiments import generalization as gen_config  # pylint: disable=g-import-not-at-top
  config = gen_config.get_config()
  config.experiment.models = models
  config.experiment.seeds = seeds
  with pytest.raises(UserError, match=message):
    generalization.run(config, str(tmp_path))
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_generalization_check_over_seeds(tmp_path):
  workdir = _experiment(tmp_path, 'generalization', *FOUR_CASES,
                        '--config.experiment.ood_cases=1', '--config.experiment.seeds=(3,4)',
                        "--config.experiment.models=('augmentation',)")
  record = json.loads((workdir / 'generalization.json').read_text())
  assert set(record['by_seed']) == {'3', '4'}
  for family, stats in record['summary']['augmentation'].items():
    values = [record['by_seed'][s]['augmentation'][family]['psnr_brain']['mean'] for s in '34']
    assert values[0] != values[1]  # other cases, initialisation and data order
    assert stats['psnr_brain']['mean'] == pytest.approx(sum(values) / 2)
    assert stats['psnr_brain']['std'] == pytest.approx(abs(values[0] - values[1]) / 2)
  for seed in (3, 4):
    assert (workdir / f'seed_{seed}' / 'generalization.md').exists()
    assert (workdir / f'seed_{seed}' / 'augmentation' / 'checkpoints').is_dir()
  table = (workdir / 'generalization.md').read_text()
  assert '2 seeds (3, 4' in table and '| augmentation | independent family | 4 |' in table


@pytest.mark.slow
def test_generalization_check_end_to_end(tmp_path):
  workdir = _experiment(tmp_path, 'generalization', *FOUR_CASES,
                        '--config.experiment.ood_cases=2')
  assert {'no_augmentation', 'augmentation', 'relaxometry', 'generalization.md',
          'montage_augmentation_independent.png', 'montage_no_augmentation_same.png'} <= set(
              os.listdir(workdir))
  record = json.loads((workdir / 'generalization.json').read_text())
  assert set(record['summary']) == {'no_augmentation', 'augmentation'}
  for model in record['per_case'].values():
    # 1 held-out case, 2 of the other family
    assert [len(rows) for rows in model.values()] == [1, 2]
    assert all(set(r) >= {'dice_WT', 'psnr_brain', 'psnr_tumour_vs_mean'}
               for rows in model.values() for r in rows.values())
  # The augmented model saw other examples: its parameters, and so its figures, differ.
  no, yes = (record['summary'][m]['independent family']['psnr_brain']['mean']
             for m in ('no_augmentation', 'augmentation'))
  assert no != yes
  table = (workdir / 'generalization.md').read_text()
  assert '| augmentation | independent family |' in table


@pytest.mark.slow
def test_uncertainty_methods_end_to_end(tmp_path):
  workdir = _experiment(tmp_path, 'uncertainty_methods', *FOUR_CASES,
                        '--config.experiment.ensemble_size=2', '--config.experiment.mc_samples=2',
                        '--config.experiment.tta=lr')
  files = set(os.listdir(workdir))
  assert {'single', 'ensemble', 'methods', 'uncertainty_methods.md', 'uncertainty_methods.json',
          'qu_brats_curves.png', 'sparsification_methods.png', 'reliability_methods.png'} <= files
  record = json.loads((workdir / 'uncertainty_methods.json').read_text())['methods']
  assert list(record) == ['MC dropout', 'deep ensemble', 'TTA', 'ensemble + MC dropout']
  for summary in record.values():
    assert {'dice_WT', 'qu_ET_score', 'ece_brain', 'brier_brain', 'psnr_brain', 'ause',
            'within_1std', 'within_2std', 'cost'} <= set(summary)
  assert [record[m]['cost']['passes_per_case'] for m in record] == [2, 2, 2, 4]
  # One ensemble checkpoint, two members: its training cost is its own, recorded once.
  assert record['deep ensemble']['cost']['training_s'] == record['ensemble + MC dropout'][
      'cost']['training_s']
  table = (workdir / 'uncertainty_methods.md').read_text()
  assert '| deep ensemble |' in table and 'network passes per case' in table
