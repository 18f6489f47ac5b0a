"""fairseq-layerdrop: LayerDrop (Fan, Grave & Joulin, ICLR 2020) as a fairseq plugin.

torch and fairseq are deliberately *not* listed in install_requires: torch must be
chosen by the user (CPU or CUDA build) and fairseq comes from the Python-3.11 build
`fairseq-fixed`, installed with --no-deps. See scripts/setup_env.sh and the README.
matplotlib is optional (``[eval]``): without it fairseq-layerdrop-sweep skips its plot.
"""
from setuptools import find_packages, setup

setup(
    name="fairseq-layerdrop",
    version="0.1.0",
    description="LayerDrop (structured dropout, depth on demand) for fairseq transformers",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11,<3.12",  # fairseq-fixed 0.12.3.1 is built for 3.11 (scripts/setup_env.sh)
    packages=find_packages(include=["fairseq_layerdrop", "fairseq_layerdrop.*"]),
    install_requires=["sacrebleu>=2.3", "sentencepiece", "tqdm", "omegaconf", "hydra-core"],
    extras_require={"eval": ["rouge-score", "matplotlib"], "test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "fairseq-layerdrop-prune = fairseq_layerdrop.cli.prune:main",
            "fairseq-layerdrop-sweep = fairseq_layerdrop.cli.sweep:main",
            "fairseq-layerdrop-plot = fairseq_layerdrop.cli.plot:main",
            "fairseq-layerdrop-generate = fairseq_layerdrop.cli.generate:main",
        ]
    },
)
