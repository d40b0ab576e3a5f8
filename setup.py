# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Install hivit_mm. The pinned stack it runs on is in requirements/ (see README.md);
`make env` installs it, `pip install -e .` only adds this package."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'hivit_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


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
    install_requires=read_requirements('mminstall.txt'),
    extras_require=dict(
        all=read_requirements('runtime.txt'), tests=read_requirements('tests.txt')),
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False)
