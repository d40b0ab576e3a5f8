from setuptools import find_packages, setup
setup(name='hivit_mm', version='0.1.0', packages=find_packages(include=['hivit_mm*']))
