# Copyright (c) mmuol contributors. All rights reserved.
"""README commands and links point at files that exist (no doc drift)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / 'README.md'] + sorted((ROOT / 'configs').glob('*/README.md'))


@pytest.mark.parametrize('readme', READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_in_readme_exist(readme):
    text = readme.read_text()
    paths = set(re.findall(r'((?:configs|tools|demo)/[\w./\-]+\.(?:py|sh|md))', text))
    # relative markdown links, e.g. [config](lost_dino-vits16_voc07.py)
    for link in re.findall(r'\]\(([^)#:]+\.(?:py|md))\)', text):
        paths.add(str((readme.parent / link).relative_to(ROOT)))
    missing = [p for p in sorted(paths) if '<' not in p and not (ROOT / p).exists()]
    assert not missing, f'{readme.relative_to(ROOT)} names missing files: {missing}'


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    assert 'make test' in readme and 'make demo' in readme
    ci = (ROOT / '.ci' / 'run').read_text()
    assert re.search(r'^make test$', ci, re.M)
    makefile = (ROOT / 'Makefile').read_text()
    assert 'pytest tests' in makefile and 'tools/setup_env.sh' in makefile
