"""rt4ksr_arch: RT4KSR (CVPRW 2023) as a BasicSR plugin.

Install (README, "Install"): ``pip install torch torchvision`` first, then
``pip install --no-build-isolation -e ".[test]"`` so that basicsr's sdist, which imports
torch while building, uses the torch already installed instead of downloading another.
"""
from os import path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements() -> list:
    with open(osp.join(HERE, 'requirements.txt')) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


EXPORT = ['onnx>=1.16', 'onnxruntime>=1.18']  # rt4ksr export, rt4ksr benchmark --onnx / --backend onnxruntime
SPANDREL = ['spandrel>=0.4']  # rt4ksr_arch.spandrel_support: RT4KSR for ComfyUI and other spandrel users
DEMO = ['gradio>=6']  # rt4ksr demo (gr.ImageSlider; theme and footer in launch())
BROWSER = ['playwright>=1.40']  # tests/test_demo.py drives the system's Chromium (no browser download)

setup(
    name='rt4ksr_arch',
    version='0.2.0',
    description='RT4KSR real-time 4K super-resolution as a BasicSR plugin',
    long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['rt4ksr_arch', 'rt4ksr_arch.*']),
    python_requires='>=3.9',
    install_requires=read_requirements(),
    extras_require={'test': ['pytest>=7'] + EXPORT + SPANDREL + DEMO + BROWSER, 'export': EXPORT, 'spandrel': SPANDREL,
                    'demo': DEMO},
    entry_points={'console_scripts': ['rt4ksr = rt4ksr_arch.cli.main:main']},
    license='Apache-2.0',
)
