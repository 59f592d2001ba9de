"""The documentation keeps its promises: links and images resolve, the configs its commands name
exist and load, README's two commands are the ones CI and the demo test run, and the package's
folders import one way only (docs/architecture.md)."""

import importlib.util
import os
import re

import ml_collections
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ['README.md', 'bench/README.md'] + sorted(
    os.path.join('docs', f) for f in os.listdir(os.path.join(REPO, 'docs')) if f.endswith('.md'))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
CONFIG = re.compile(r'\bconfigs/[\w/]+\.py(?::\w+)?')
# The folders of rsnet_jax, lowest first: each may import only those before it.
LAYERS = ('runtime', 'data', 'model', 'inference', 'evaluation', 'training', 'baselines',
          'experiments')


def _read(path: str) -> str:
  with open(os.path.join(REPO, path)) as f:
    return f.read()


def _slug(heading: str) -> str:
  """GitHub's anchor of a Markdown heading."""
  text = heading.strip().lower().replace('`', '')
  return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def _anchors(path: str) -> set[str]:
  return {_slug(h) for h in re.findall(r'^#+ (.*)$', _read(path), flags=re.M)}


def _code(text: str) -> str:
  """The indented code blocks and inline code of a Markdown page."""
  blocks = re.findall(r'^(?: {4}.*\n?)+', text, flags=re.M)
  return '\n'.join(blocks + re.findall(r'`([^`\n]+)`', text))


def test_slug_matches_github():
  assert _slug("Config reference (`configs/default.py`: the paper's settings)") == (
      'config-reference-configsdefaultpy-the-papers-settings')
  assert _slug('Learning runs (2026-11-27)') == 'learning-runs-2026-11-27'


@pytest.mark.parametrize('page', PAGES)
def test_relative_links_and_images_resolve(page):
  missing = []
  for target in LINK.findall(_read(page)):
    if re.match(r'[a-z]+:', target):
      continue  # http(s), mailto: not ours to check offline
    path, _, anchor = target.partition('#')
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(os.path.join(REPO, resolved)):
      missing.append(f'{target}: no file {resolved}')
    elif anchor and resolved.endswith('.md') and anchor not in _anchors(resolved):
      missing.append(f'{target}: no heading #{anchor} in {resolved}')
  assert not missing, f'{page}: ' + '; '.join(missing)


def _load_config(name: str) -> ml_collections.ConfigDict:
  path, _, arg = name.partition(':')
  spec = importlib.util.spec_from_file_location(path[:-3].replace('/', '.'),
                                                os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


@pytest.mark.parametrize('page', PAGES)
def test_configs_named_in_commands_exist_and_load(page):
  names = sorted(set(CONFIG.findall(_code(_read(page)))))
  for name in names:
    assert os.path.exists(os.path.join(REPO, name.partition(':')[0])), f'{page}: {name} missing'
    assert isinstance(_load_config(name), ml_collections.ConfigDict), f'{page}: {name}'


def test_readme_commands_are_what_ci_and_the_demo_test_run():
  blocks = re.findall(r'^ {4}(.+)$', _read('README.md'), flags=re.M)
  demo, tests = blocks[0].strip(), blocks[1].strip()
  assert demo == ('pip install -e . && python -m rsnet_jax.main --config configs/demo.py '
                  '--workdir runs/demo')
  ci = [line.strip() for line in _read('.ci/run').splitlines() if line.strip()]
  assert ci[-1] == tests  # CI runs exactly README's test command, last
  # The end-to-end test runs the same module with the same config (shrunk by overrides).
  assert "'-m', 'rsnet_jax.main', '--config', 'configs/demo.py'" in _read('tests/test_main.py')
  assert demo.split(' && ')[1].startswith('python -m rsnet_jax.main --config configs/demo.py')


def test_readme_stays_short_and_links_every_page():
  readme = _read('README.md')
  assert len(readme.encode()) < 15_000
  linked = {os.path.normpath(t.partition('#')[0]) for t in LINK.findall(readme)}
  assert {p for p in PAGES if p.startswith('docs/')} <= linked


def test_package_folders_import_one_way():
  """A module of folder F imports only folders below F in `LAYERS`, and no two modules import each
  other (docs/architecture.md)."""
  rank = {name: i for i, name in enumerate(LAYERS)}
  imports, wrong = {}, []
  root = os.path.join(REPO, 'rsnet_jax')
  for folder, _, names in os.walk(root):
    for name in names:
      if not name.endswith('.py'):
        continue
      rel = os.path.relpath(os.path.join(folder, name), REPO)
      module = rel[:-3].replace(os.sep, '.').removesuffix('.__init__')
      text = _read(rel)
      deps = {f'{pkg}.{mod}' for pkg, mod in
              re.findall(r'^\s*from (rsnet_jax(?:\.\w+)*) import (\w+)', text, flags=re.M)}
      imports[module] = deps
      own = module.split('.')[1] if module.count('.') >= 2 else None
      for dep in deps:
        layer = dep.split('.')[1]
        if own in rank and layer in rank and rank[layer] > rank[own]:
          wrong.append(f'{module} imports {dep}')
  wrong += [f'{a} <-> {b}' for a, deps in imports.items() for b in deps
            if a in imports.get(b, ()) and a < b]
  assert not wrong
  assert set(LAYERS) == {d for d in os.listdir(root)
                         if os.path.isfile(os.path.join(root, d, '__init__.py'))}
