import re
from setuptools import find_packages, setup

# the version is carn_da.__version__, read without importing the package (and torch with it)
with open('carn_da/__init__.py', encoding='utf-8') as f:
    VERSION = re.search(r"__version__ = '([^']+)'", f.read())[1]

setup(
    name='carn-da',
    version=VERSION,
    description='Compression-artifact reduction networks with domain adaptation across JPEG quality, '
    'a BasicSR plugin (Ham, Yoo, Kang, Proc. SPIE 11842, 2021)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['carn_da', 'carn_da.*']),
    # the shipped models (scripts/train_zoo.py): weights, options, model cards and their manifest
    package_data={'carn_da': ['weights/*.pth', 'weights/*.yml', 'weights/*.md', 'weights/models.json']},
    python_requires='>=3.10',  # zip(strict=True)
    install_requires=[
        'torch', 'torchvision', 'basicsr>=1.4.2', 'numpy', 'opencv-python', 'pyyaml', 'lmdb', 'tb-nightly',
        'scikit-image', 'matplotlib', 'tqdm', 'pillow', 'h5py', 'scipy'
    ],
    entry_points={'console_scripts': ['carn-da=carn_da.cli:main', 'carn-da-eval=carn_da.evaluate:main']},
    license='Apache-2.0',
)
