# Copyright (c) mmuol contributors. All rights reserved.
"""Install mmuol. ``configs/``, ``tools/``, ``demo/`` and ``model-index.yml``
are shipped inside ``mmuol/.mim/`` (as mmdet/mmyolo do) so that ``mim``
finds them."""
import os
import os.path as osp
import shutil
import sys
import warnings
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def readme() -> str:
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope = {}
    with open(osp.join(ROOT, 'mmuol', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Requirement lines of ``requirements/<fname>`` (comments dropped)."""
    reqs = []
    with open(osp.join(ROOT, 'requirements', fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Copy (sdist/wheel) or symlink (develop) mim files into mmuol/.mim."""
    if 'develop' in sys.argv or any(a.startswith('editable') for a in sys.argv):
        mode = 'symlink'
    elif any(a in sys.argv for a in ('sdist', 'bdist_wheel', 'install')):
        mode = 'copy'
    else:
        return
    filenames = ['tools', 'configs', 'demo', 'model-index.yml']
    mim_path = osp.join(ROOT, 'mmuol', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in filenames:
        src = osp.join(ROOT, name)
        dst = osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        if osp.isfile(dst) or osp.islink(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, osp.dirname(dst)), dst)
                continue
            except OSError:
                warnings.warn(f'could not symlink {src}; copying instead')
        if osp.isfile(src):
            shutil.copyfile(src, dst)
        else:
            shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmuol',
        version=get_version(),
        description='Unsupervised object localization and annotation-free '
        'segmentation for MMDetection 3.x and MMSegmentation 1.x',
        long_description=readme(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        packages=find_packages(
            exclude=('tests', 'tests.*', 'configs', 'configs.*', 'tools', 'tools.*', 'demo',
                     'demo.*')),
        include_package_data=True,
        package_data={'mmuol': ['.mim/**/*', 'datasets_files/*']},
        python_requires='>=3.8',
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'tests':
            parse_requirements('tests.txt'),
            'mim': [
                'mmcv>=2.0.0,<2.2.0', 'mmengine>=0.10.0,<1.0.0', 'mmdet>=3.3.0,<3.4.0',
                'mmsegmentation>=1.2.2,<1.3.0'
            ],
        },
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False)
