# Copyright (c) mmuol contributors. All rights reserved.
"""Import a script of ``tools/`` or ``demo/`` as a module (tests call its
``main`` in-process instead of starting a second interpreter)."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional, Union

__all__ = ['load_script']


def load_script(path: Union[str, Path], name: Optional[str] = None) -> ModuleType:
    """Execute a Python file as a module and return it.

    The module is registered in ``sys.modules`` under ``name`` (default: the
    file's stem) so that functions it hands to ``multiprocessing`` pickle.

    Args:
        path (str | Path): The script.
        name (str, optional): Module name.

    Returns:
        ModuleType: The executed module.
    """
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
