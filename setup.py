# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Install hivit_mm. The pinned stack it runs on is in requirements/ (see README.md);
`make env` installs it, `pip install -e .` only adds this package."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
#: What hivit_mm/.mim holds: the model index, configs and tools that `import hivit_mm`
#: (the model zoo by name) and OpenMMLab's `mim` (`mim train hivit_mm CONFIG`) read from
#: an installed copy.
MIM_FILES = ('model-index.yml', 'configs', 'tools', 'requirements')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'hivit_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def add_mim_extension() -> None:
    """Put :data:`MIM_FILES` into ``hivit_mm/.mim``, as OpenMMLab packages do: links
    for an editable install (``develop``, ``editable_wheel``), copies for a wheel or
    sdist; nothing for other commands."""
    if {'develop', 'editable_wheel'} & set(sys.argv):
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim = osp.join(HERE, 'hivit_mm', '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


add_mim_extension()
setup(
    name='hivit_mm',
    version=read_version(),
    description='Hierarchical vision transformers (HiViT, GreenMIM) for masked image '
    'modelling in OpenMMLab 2.x',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['hivit_mm', 'hivit_mm.*']),
    include_package_data=True,
    package_data={'hivit_mm': ['.mim/**/*', '.mim/*']},
    install_requires=read_requirements('mminstall.txt'),
    extras_require=dict(
        all=read_requirements('runtime.txt'), tests=read_requirements('tests.txt')),
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False)
