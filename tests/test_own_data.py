"""Users' own data: awkward valid inputs all predict like the case they encode, on their own grid;
invalid inputs all get their documented one-line message and exit code, and the valid cases of the
same run are still written."""

import gzip
import os
import subprocess
import sys

import jax
import nibabel as nib
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rsnet_jax.data import itk
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic
from rsnet_jax.errors import UserError
from rsnet_jax.inference import predict
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import TINY_PIN_FLAGS
from tests.conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (16, 16, 16)
KEYS_2021 = ('t1', 't1ce', 't2', 'flair', 'seg')
NAMES_2023 = dict(zip(KEYS_2021, ('t1n', 't1c', 't2w', 't2f', 'seg')))
FLAGS = ['--config.model.base_filters=2', '--config.model.num_levels=2',
         '--config.predict.num_mc_samples=0', *TINY_PIN_FLAGS]
STEP = 8  # base intensities are multiples of 8, so uint8 with scl_slope 8 stores them exactly


def _config():
  return tiny_config(**{'predict.num_mc_samples': 0})


@pytest.fixture(scope='module')
def base(tmp_path_factory):
  """One tiny case as ``({key: int16 array}, affine)`` in the BraTS (LPS) orientation."""
  root = tmp_path_factory.mktemp('base')
  (case_dir,) = synthetic.generate_dataset(str(root), 1, seed=11, shape=SHAPE)
  case_id = os.path.basename(case_dir)
  volumes, affine = {}, None
  for key in KEYS_2021:
    img = nib.load(os.path.join(case_dir, f'{case_id}_{key}.nii.gz'))
    data = np.asarray(img.dataobj)
    volumes[key] = data if key == 'seg' else (np.round(data / STEP) * STEP).astype(np.int16)
    affine = img.affine
  return volumes, affine


def _save(path, data, affine, **header):
  img = nib.Nifti1Image(data, affine)
  for name, value in header.items():
    img.header[name] = value
  os.makedirs(os.path.dirname(path), exist_ok=True)
  nib.save(img, path)


def _flipped(data, affine, axes):
  ornt = np.array([[i, -1 if i in axes else 1] for i in range(3)])
  return (nib.orientations.apply_orientation(data, ornt),
          affine @ nib.orientations.inv_ornt_aff(ornt, data.shape[:3]))


def _write_2021(root, case_id, volumes, affine, keys=KEYS_2021, ext='.nii.gz', transform=None,
                **header):
  for key in keys:
    data, aff = volumes[key], affine
    if transform is not None:
      data, aff = transform(data, aff)
    _save(os.path.join(root, case_id, f'{case_id}_{key}{ext}'), data, aff, **header)


def _valid_cases(root, volumes, affine):
  """The awkward valid inputs, by case ID (what each one tests)."""
  cases = {}

  def add(case_id, what, **kw):
    cases[case_id] = what
    _write_2021(root, case_id, volumes, affine, **kw)

  add('BraTS2021_10000', 'reference: int16 .nii.gz in the BraTS orientation')
  for i, axes in enumerate(((0,), (1,), (2,), (0, 1))):
    add(f'BraTS2021_1000{i + 1}', f'voxel axes {axes} flipped',
        transform=lambda d, a, axes=axes: _flipped(d, a, axes))
  add('BraTS2021_10005', '.nii, not gzipped', ext='.nii')
  add('BraTS2021_10006', 'trailing singleton 4th axis',
      transform=lambda d, a: (d[..., None], a))
  add('BraTS2021_10007', 'float64', transform=lambda d, a: (d.astype(np.float64), a))
  add('BraTS2021_10008', 'target and segmentation missing', keys=KEYS_2021[:3])
  # int16 with scl_slope 0.5 / scl_inter 10 and uint8 with scl_slope 8 (same intensities once scaled)
  images = [k for k in KEYS_2021 if k != 'seg']
  for case_id, dtype, slope, inter in (('BraTS2021_10009', np.int16, 0.5, 10.0),
                                       ('BraTS2021_10010', np.uint8, STEP, 0.0)):
    cases[case_id] = f'{np.dtype(dtype).name} with scl_slope {slope}, scl_inter {inter}'
    for key in images:
      raw = ((volumes[key].astype(np.float64) - inter) / slope).astype(dtype)
      _save(os.path.join(root, case_id, f'{case_id}_{key}.nii.gz'), raw, affine,
            scl_slope=slope, scl_inter=inter)
  # BraTS 2023 names, sform code 2 (aligned to another scan) and qform code 1, times in seconds
  case_id = 'BraTS-GLI-10011-000'
  cases[case_id] = 'BraTS 2023 names, qform code 1 and sform code 2'
  for key in images:
    img = nib.Nifti1Image(volumes[key], affine)
    img.header.set_sform(affine, code=2)
    img.header.set_qform(affine, code=1)
    img.header.set_xyzt_units('mm', 'sec')
    nib.save(img, os.path.join(_mkdir(root, case_id), f'{case_id}-{NAMES_2023[key]}.nii.gz'))
  # BraTS 2015: .mha in VSD folders (the segmentation's non-enhancing label 3 is allowed)
  case_id = 'brats_2013_pat0042_1'
  cases[case_id] = 'BraTS 2015 .mha in VSD folders'
  for i, key in enumerate(images):
    stem = f'VSD.Brain.XX.O.{layouts.VSD_NAMES[key]}.{54510 + i}'
    itk.write(os.path.join(_mkdir(root, case_id, stem), stem + '.mha'), volumes[key], affine)
  return cases


def _mkdir(*parts):
  path = os.path.join(*[str(p) for p in parts])
  os.makedirs(path, exist_ok=True)
  return path


def _invalid_cases(root, volumes, affine):
  """Each invalid input, by case ID: ``(the file named, the reason printed)``."""
  def case(i, **kw):
    case_id = f'BraTS2021_2000{i}' if i < 10 else f'BraTS2021_200{i}'
    _write_2021(root, case_id, volumes, affine, **kw)
    return case_id, os.path.join(root, case_id, case_id)

  bad = {}
  cid, stem = case(1, keys=('t1', 't1ce', 'flair'))
  bad[cid] = (f'{stem}_t2.nii.gz', 'missing t2 file')
  cid, stem = case(2)
  with open(f'{stem}_t1ce.nii.gz', 'wb') as f:
    f.write(b'this is not a NIfTI file' * 20)
  bad[cid] = (f'{stem}_t1ce.nii.gz', 'unreadable NIfTI')
  cid, stem = case(3)
  with open(f'{stem}_t1.nii.gz', 'rb') as f:
    raw = gzip.decompress(f.read())
  with gzip.open(f'{stem}_t1.nii.gz', 'wb') as f:
    f.write(raw[:len(raw) // 2])
  bad[cid] = (f'{stem}_t1.nii.gz', 'unreadable NIfTI')
  cid, stem = case(4)
  _save(f'{stem}_t2.nii.gz', volumes['t2'][:, :, :12], affine)
  bad[cid] = (f'{stem}_t2.nii.gz', 'shape (16, 16, 12) differs from (16, 16, 16)')
  cid, stem = case(5)
  shifted = affine.copy()
  shifted[0, 3] += 2.0
  _save(f'{stem}_t2.nii.gz', volumes['t2'], shifted)
  bad[cid] = (f'{stem}_t2.nii.gz', 'affine differs from that of')
  for i, value in ((6, np.nan), (7, np.inf)):
    cid, stem = case(i)
    data = volumes['t1'].astype(np.float32)
    data[5, 5, 5] = value
    _save(f'{stem}_t1.nii.gz', data, affine)
    bad[cid] = (f'{stem}_t1.nii.gz', '1 NaN/Inf voxels')
  cid, stem = case(8)
  _save(f'{stem}_t1ce.nii.gz', np.zeros(SHAPE, np.int16), affine)
  bad[cid] = (f'{stem}_t1ce.nii.gz', 'empty image (all voxels 0)')
  cid, stem = case(9)
  _save(f'{stem}_t2.nii', volumes['t2'], affine)  # next to the .nii.gz of the same name
  bad[cid] = (f'{stem}_t2.nii', '2 files match the t2 pattern')
  cid, stem = case(10)
  _save(f'{stem}_t2.nii.gz', np.stack([volumes['t2']] * 2, -1), affine)
  bad[cid] = (f'{stem}_t2.nii.gz', 'a 4D series of 2 volumes of (16, 16, 16)')
  # The reference case ID once more, in a sub-folder.
  _write_2021(os.path.join(root, 'more'), 'BraTS2021_10000', volumes, affine)
  bad['BraTS2021_10000 (again)'] = (os.path.join(root, 'more', 'BraTS2021_10000'),
                                    f'case ID BraTS2021_10000 also in {root}/BraTS2021_10000')
  return bad


def _checkpoint(workdir):
  config = _config()
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  manager = checkpoints.checkpoint_manager(str(workdir), config)
  manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
               metrics={'val_loss': 1.0})
  manager.close()
  return config, task, state


def _main(workdir, *args):
  cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py',
         '--workdir', str(workdir), *FLAGS, *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


def _canonical(path):
  """An output (or input) volume as the network saw it: in the BraTS orientation, 3D."""
  img = nib.load(path)
  data = np.asarray(img.dataobj)
  data = data.reshape(data.shape[:3] + tuple(s for s in data.shape[3:] if s != 1))
  ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                         nib.orientations.axcodes2ornt(('L', 'P', 'S')))
  return nib.orientations.apply_orientation(data, ornt)


@pytest.mark.slow
def test_awkward_valid_and_invalid_inputs_in_one_predict_run(base, tmp_path):
  volumes, affine = base
  inputs = tmp_path / 'inputs'
  valid = _valid_cases(str(inputs), volumes, affine)
  invalid = _invalid_cases(str(inputs), volumes, affine)
  workdir, out = tmp_path / 'work', tmp_path / 'out'
  _checkpoint(workdir)

  result = _main(workdir, '--mode=predict', f'--input={inputs}', f'--output={out}')

  # Invalid: exit 2, one line per problem naming the file and the reason, no traceback.
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  lines = result.stderr.splitlines()
  errors = lines[next(i for i, line in enumerate(lines) if line.startswith('rsnet_jax: error: ')):]
  assert all(line.startswith('rsnet_jax: error: ') for line in errors), errors  # one line each
  for case_id, (path, reason) in invalid.items():
    assert any(path in line and reason in line for line in errors), (case_id, path, reason, errors)
  assert errors[-1] == (f'rsnet_jax: error: {len(invalid)} of {len(valid) + len(invalid)} cases '
                        'not predicted')
  assert len(errors) == len(invalid) + 1
  assert sorted(os.listdir(out)) == sorted(list(valid) + ['manifest.json'])

  # Valid: every output on its input's grid (shape, affine, qform/sform codes, units), and equal,
  # once in the BraTS orientation, to the reference case's outputs.
  cases = {c.case_id: c for c in layouts.discover(str(inputs))}
  reference = {}
  for case_id in valid:
    case = cases[case_id]
    source_path = case.files['t1']
    source = nib.load(source_path) if not source_path.endswith('.mha') else None
    for name in ('flair', 'seg'):
      path = os.path.join(out, case_id, case.layout.filename(case_id, name))
      img = nib.load(path)
      if source is not None:
        assert img.shape == source.shape, (case_id, name)
        np.testing.assert_array_equal(img.affine, source.affine)
        for field in ('qform_code', 'sform_code', 'xyzt_units', 'pixdim'):
          np.testing.assert_array_equal(img.header[field], source.header[field])
      else:
        data, mha_affine = itk.read(source_path)
        assert img.shape == data.shape
        np.testing.assert_allclose(img.affine, mha_affine, atol=1e-5)
      assert img.header['descrip'].tobytes().startswith(b'rsnet_jax 0.1.0')
      assert f'flair<-t1,t1ce,t2 {"synthesis" if name == "flair" else "labels"}'.encode() in (
          img.header['descrip'].tobytes())
      canonical = _canonical(path)
      if name not in reference:
        reference[name] = canonical
      np.testing.assert_array_equal(canonical, reference[name], err_msg=f'{case_id} {name}')
  assert len(np.unique(reference['seg'])) >= 1 and reference['flair'].std() > 0

  # The manifest lists every valid case with its outputs.
  import json  # pylint: disable=g-import-not-at-top
  run = json.loads((out / 'manifest.json').read_text())['runs'][-1]
  assert sorted(run['cases']) == sorted(valid)
  assert all(len(c['outputs']) == 2 for c in run['cases'].values())


def test_train_refuses_an_invalid_dataset_unless_told_to_skip(base, tmp_path):
  volumes, affine = base
  data = tmp_path / 'data'
  for i in range(3):
    _write_2021(str(data), f'BraTS2021_3000{i}', volumes, affine)
  seg = volumes['seg'].copy()
  seg[0, 0, 0] = 5
  bad = data / 'BraTS2021_30001' / 'BraTS2021_30001_seg.nii.gz'
  _save(str(bad), seg, affine)
  config = _config()
  config.data.data_dir = str(data)
  task = pipeline.Task.from_config(config)
  with pytest.raises(UserError) as err:
    pipeline.dataset_cases(config, str(tmp_path / 'w'), task)
  assert err.value.problems[0] == f'{bad}: labels [5] outside the brats2021 set [0, 1, 2, 4]'
  assert '1 of 3 cases invalid' in err.value.problems[-1]
  config.data.skip_invalid = True
  cases = pipeline.dataset_cases(config, str(tmp_path / 'w'), task)
  assert [c.case_id for c in cases] == ['BraTS2021_30000', 'BraTS2021_30002']


def test_train_on_an_invalid_dataset_exits_2_listing_the_problem(base, tmp_path):
  volumes, affine = base
  data = tmp_path / 'data'
  _write_2021(str(data), 'BraTS2021_40000', volumes, affine)
  _write_2021(str(data), 'BraTS2021_40001', volumes, affine, keys=('t1', 't1ce', 't2', 'seg'))
  result = _main(tmp_path / 'w', f'--config.data.data_dir={data}')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-2:] == [
      f'rsnet_jax: error: {data}/BraTS2021_40001/BraTS2021_40001_flair.nii.gz: missing flair file',
      'rsnet_jax: error: 1 of 2 cases invalid; fix them or set --config.data.skip_invalid=True to '
      'leave them out']


def test_brats2015_labels_and_mha_round_trip(tmp_path):
  (case_dir,) = synthetic.generate_dataset(str(tmp_path / 'HGG'), 1, seed=3, layout='brats2015',
                                           shape=SHAPE)
  (nii_dir,) = synthetic.generate_dataset(str(tmp_path / 'nii'), 1, seed=3, shape=SHAPE)
  (case,) = layouts.discover(str(tmp_path / 'HGG'))
  (twin,) = layouts.discover(nii_dir)
  assert case.layout.name == 'brats2015' and case.case_id == os.path.basename(case_dir)
  assert sorted(case.files) == sorted(KEYS_2021)
  for key in KEYS_2021:  # the .mha files hold the same voxels on the same grid as the NIfTI twins
    mha, mha_affine = itk.read(case.files[key])
    nii = nib.load(twin.files[key])
    np.testing.assert_array_equal(mha, np.asarray(nii.dataobj))
    np.testing.assert_allclose(mha_affine, nii.affine, atol=1e-6)
  assert not layouts.validate(case, KEYS_2021)
  # BraTS 2015's label 3 (non-enhancing core) is accepted and counts as 1.
  layout = layouts.LAYOUTS['brats2015']
  np.testing.assert_array_equal(layout.label_to_index(np.array([0, 1, 2, 3, 4])), [0, 1, 2, 1, 3])
  # A folder above HGG (BRATS2015_Training/HGG/<case>) is searched too.
  assert [c.case_id for c in layouts.discover(str(tmp_path))] == sorted(
      [case.case_id, twin.case_id])


def test_mha_without_simpleitk_is_one_clear_line(tmp_path, monkeypatch):
  synthetic.generate_dataset(str(tmp_path), 2, seed=3, layout='brats2015', shape=SHAPE)
  monkeypatch.setattr(itk, 'available', lambda: False)
  with pytest.raises(UserError) as err:
    layouts.discover(str(tmp_path))
  assert err.value.problems == [
      f"{tmp_path}: 2 case(s) stored as .mha/.mhd (e.g. {tmp_path}/brats_synth_pat0000_1) need "
      "SimpleITK: pip install 'rsnet_jax[mha]'"]
  monkeypatch.setitem(sys.modules, 'SimpleITK', None)  # import fails as if not installed
  path = str(tmp_path / 'x.mha')
  with pytest.raises(UserError, match=r"x\.mha: reading \.mha/\.mhd files needs SimpleITK"):
    itk.read(path)


def test_custom_layout_bids_like_folders(base, tmp_path):
  volumes, affine = base
  names = {'t1': 'T1w', 't1ce': 'ce-gd_T1w', 't2': 'T2w', 'flair': 'FLAIR', 'seg': 'dseg'}
  for subject in ('sub-01', 'sub-02'):
    for key, name in names.items():
      _save(str(tmp_path / 'bids' / subject / 'anat' / f'{subject}_{name}.nii.gz'),
            volumes[key], affine)
  config = _config()
  config.data.layout = 'custom'
  for key, name in names.items():
    config.data.custom_files[key] = f'anat/{{case}}_{name}.nii.gz'
  candidates = layouts.from_config(config.data)
  cases = layouts.discover(str(tmp_path / 'bids'), candidates)
  assert [c.case_id for c in cases] == ['sub-01', 'sub-02']
  assert cases[0].files['t1ce'] == str(tmp_path / 'bids/sub-01/anat/sub-01_ce-gd_T1w.nii.gz')
  assert not layouts.validate(cases[0], KEYS_2021)
  # The built-in layouts do not see these cases.
  with pytest.raises(UserError, match="no case found.*data.layout='custom'"):
    layouts.discover(str(tmp_path / 'bids'))
  # Predictions are written with BraTS 2021 names (the patterns hold folders).
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  written = predict.predict_cases(config, state.params, state.apply_fn, task, cases[:1],
                                  str(tmp_path / 'out'), jax.random.key(1))
  assert sorted(os.path.basename(p) for p in written) == ['sub-01_flair.nii.gz', 'sub-01_seg.nii.gz']


def test_custom_layout_plain_names_and_flat_folder(base, tmp_path):
  volumes, affine = base
  for subject in ('p1', 'p2'):
    for key in KEYS_2021:
      _save(str(tmp_path / f'{subject}.{key.upper()}.nii'), volumes[key], affine)
  config = _config()
  config.data.layout = 'custom'
  config.data.custom_labels = (0, 1, 2, 4)
  for key in KEYS_2021:
    config.data.custom_files[key] = f'{{case}}.{key.upper()}.nii'
  cases = layouts.discover(str(tmp_path), layouts.from_config(config.data))
  assert [c.case_id for c in cases] == ['p1', 'p2'] and all(len(c.files) == 5 for c in cases)
  # Plain names: outputs are named as the inputs are.
  assert cases[0].layout.filename('p1', 'flair') == 'p1.FLAIR.nii'


@pytest.mark.parametrize('files,labels,message', [
    ({}, (0, 1, 2, 4), "data.layout='custom' needs data.custom_files"),
    ({'t1': '{subject}_T1w.nii.gz'}, (0, 1, 2, 4), r"unknown placeholder\(s\) \['subject'\]"),
    ({'dwi': '{case}_DWI.nii.gz'}, (0, 1, 2, 4), 'data.custom_files.dwi: unknown key'),
    ({'t1': '{case}_T1w.nii.gz'}, (1, 2), 'expected distinct values starting with 0'),
])
def test_custom_layout_config_errors(files, labels, message):
  with pytest.raises(UserError, match=message):
    layouts.custom_layout(files, labels)


def test_unknown_layout_name_is_a_user_error():
  config = _config()
  config.data.layout = 'brats2019'
  with pytest.raises(UserError, match="data.layout must be 'auto', 'custom' or one of"):
    layouts.from_config(config.data)


def test_output_header_keeps_the_inputs_spatial_fields(tmp_path):
  from rsnet_jax.data import nifti  # pylint: disable=g-import-not-at-top
  affine = np.array([[0, -1.2, 0, 30], [0.9, 0, 0, -20], [0, 0, 2.5, 7], [0, 0, 0, 1.0]])
  img = nib.Nifti2Image(np.zeros((4, 5, 6, 1), np.int16), affine)
  img.header.set_qform(affine, code=1)
  img.header.set_sform(affine, code=3)
  img.header.set_xyzt_units('mm', 'msec')
  img.header['cal_max'] = 900
  nib.save(img, tmp_path / 'in.nii')
  like = nifti.header(str(tmp_path / 'in.nii'))
  nifti.save(str(tmp_path / 'out.nii.gz'), np.ones((4, 5, 6, 1), np.float32), affine, 'made by us',
             like=like)
  out = nib.load(tmp_path / 'out.nii.gz')
  assert isinstance(out, nib.Nifti2Image) and out.get_data_dtype() == np.float32
  assert (out.header['qform_code'], out.header['sform_code']) == (1, 3)
  assert out.header.get_xyzt_units() == ('mm', 'msec') and out.header['cal_max'] == 0
  np.testing.assert_array_equal(out.affine, affine)
  assert out.header['descrip'].tobytes().rstrip(b'\0') == b'made by us'
  np.testing.assert_array_equal(out.get_fdata(), 1.0)
