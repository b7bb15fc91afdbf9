# Copyright (c) mmuol contributors. All rights reserved.
"""Run the localization tests single-threaded (see ``single_threaded``)."""
import pytest

from mmuol.testing.localization import single_threaded


@pytest.fixture(autouse=True, scope='module')
def _single_threaded():
    with single_threaded():
        yield
