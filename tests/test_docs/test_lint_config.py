# Copyright (c) mmuol contributors. All rights reserved.
"""One lint configuration: one line length, pre-commit revs = the pinned tools CI runs."""
import configparser
import re
from pathlib import Path

import isort
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    return cfg


def _pins() -> dict:
    """``name -> version`` of the ``==`` pins in requirements/lint.txt."""
    text = (ROOT / 'requirements' / 'lint.txt').read_text()
    return dict(re.findall(r'^([\w\-]+)==([\w.]+)', text, re.M))


def test_one_line_length_for_all_linters():
    cfg = _setup_cfg()
    assert cfg['isort'].getint('line_length') == 100
    assert cfg['yapf'].getint('COLUMN_LIMIT') == 100
    assert cfg['flake8'].getint('max-line-length') == 100


def test_isort_sections_follow_openmmlab():
    """stdlib / third party / first party as OpenMMLab sorts them (setuptools counts as stdlib).

    ``known_standard_library = setuptools`` would replace isort 5's whole stdlib list and file
    ``os`` under third party; ``extra_standard_library`` adds to it.
    """
    config = isort.Config(settings_path=str(ROOT))
    assert config.line_length == 100
    places = {
        m: isort.place_module(m, config=config)
        for m in ('os', 'typing', 'setuptools', 'numpy', 'torch', 'mmdet', 'mmuol')
    }
    assert places == dict(
        os='STDLIB',
        typing='STDLIB',
        setuptools='STDLIB',
        numpy='THIRDPARTY',
        torch='THIRDPARTY',
        mmdet='THIRDPARTY',
        mmuol='FIRSTPARTY')


def test_pre_commit_revs_match_the_pinned_linters():
    hooks = yaml.safe_load((ROOT / '.pre-commit-config.yaml').read_text())
    revs = {repo['repo'].rsplit('/', 1)[1]: repo['rev'].lstrip('v') for repo in hooks['repos']}
    ids = {hook['id'] for repo in hooks['repos'] for hook in repo['hooks']}
    pins = _pins()
    assert revs == {
        'flake8': pins['flake8'],
        'isort': pins['isort'],
        'yapf': pins['yapf'],
        'pre-commit-hooks': pins['pre-commit-hooks']
    }
    assert pins['yapf'] == '0.43.0' and pins['flake8'].startswith('7.')
    assert {'flake8', 'isort', 'yapf', 'trailing-whitespace', 'end-of-file-fixer',
            'check-yaml'} <= ids


def test_ci_runs_the_linters():
    ci = (ROOT / '.ci' / 'run').read_text()
    assert re.search(r'^make lint \|\| lint_rc=\$\?$', ci, re.M)
    makefile = (ROOT / 'Makefile').read_text()
    paths = re.search(r'^LINT_PATHS := (.*)$', makefile, re.M).group(1).split()
    assert paths == ['mmuol', 'tools', 'demo', 'tests', 'configs', 'setup.py']
    recipe = makefile.split('\nlint: setup\n', 1)[1]
    for check in ('-m flake8 $(LINT_PATHS)', '-m isort --check-only --diff $(LINT_PATHS)',
                  '-m yapf --diff --recursive --parallel $(LINT_PATHS)'):
        assert check in recipe
    setup_env = (ROOT / 'tools' / 'setup_env.sh').read_text()
    assert '-r requirements/lint.txt' in setup_env
