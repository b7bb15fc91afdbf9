# Copyright (c) mmuol contributors. All rights reserved.
"""mim's model index lists every metafile, and every metafile's configs exist."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METAFILES = sorted((ROOT / 'configs').glob('*/metafile.yml'))


def test_model_index_lists_every_metafile():
    index = (ROOT / 'model-index.yml').read_text()
    listed = re.findall(r'^\s*-\s*(configs/\S+/metafile\.yml)\s*$', index, re.M)
    assert sorted(listed) == sorted(str(p.relative_to(ROOT)) for p in METAFILES)


@pytest.mark.parametrize('metafile', METAFILES, ids=lambda p: p.parent.name)
def test_metafile_configs_exist(metafile):
    text = metafile.read_text()
    configs = re.findall(r'^\s*Config:\s*(\S+\.py)\s*$', text, re.M)
    assert configs, f'{metafile} lists no config'
    missing = [c for c in configs if not (ROOT / c).is_file()]
    assert not missing, f'{metafile} names missing configs: {missing}'
    readme = re.findall(r'^\s*README:\s*(\S+)\s*$', text, re.M)
    assert all((ROOT / r).is_file() for r in readme), readme
