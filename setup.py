"""Installs ctx_tf: CrossTransformers (CTX) + SimCLR episodes for Meta-Dataset, in TF2/Keras 2."""

import pathlib

import setuptools
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).parent


class BuildPyWithConfigs(build_py):
    """Also copies the gin configs, edited in the top-level gin/ folder, into the built package
    as ctx_tf/configs/, where `ctx_tf.cli.GIN_DIR` finds them in an installed package (an
    editable install reads gin/ in place)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = HERE / "gin"
        target = pathlib.Path(self.build_lib) / "ctx_tf" / "configs"
        for path in sorted(source.rglob("*.gin")):
            destination = target / path.relative_to(source)
            self.mkpath(str(destination.parent))
            self.copy_file(str(path), str(destination))

setuptools.setup(
    name="ctx_tf",
    version="0.1.0",
    description=(
        "CrossTransformers (CTX) and SimCLR episodes for Meta-Dataset in TensorFlow 2 / Keras 2"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["ctx_tf", "ctx_tf.*"]),
    # The official Meta-Dataset facts (derived by tools/derive_benchmark_facts.py), with their
    # provenance and Apache-2.0 notice.
    package_data={"ctx_tf.data.facts": ["*.json", "*.json.gz", "NOTICE"]},
    python_requires=">=3.9",
    install_requires=[
        # 2.15 is what the official meta-dataset code needs; the newest release is supported.
        "tensorflow>=2.15",
        # Keras 2. Every tf-keras release pins its own TensorFlow minor version, so pip picks
        # the tf-keras that matches the TensorFlow it resolves.
        "tf-keras>=2.15",
        "gin-config>=0.5",
        "absl-py>=1.0",
        "numpy>=1.23",
        # Reads the images of a folder tree and writes JPEGs in the writer (as the official
        # converter does).
        "pillow>=9.0",
        # The results charts and training curves (Agg renderer, no display needed).
        "matplotlib>=3.5",
        # `tensorboard --logdir runs/` and tf.summary.scalar/image. Older TensorFlow releases
        # pin their own tensorboard minor (2.15 needs 2.15.x) and pip resolves that one; the
        # newest (2.21) no longer depends on tensorboard, which is then installed from here.
        "tensorboard>=2.15",
        # Reads VGG Flower's imagelabels.mat (MATLAB v5), as the official converter does.
        "scipy>=1.7",
        # CRC32C of the TFRecord framing, so converter workers need no TensorFlow.
        "google-crc32c>=1.5",
    ],
    extras_require={
        # pytest-timeout: a deadlocked test fails with its threads' stacks instead of hanging CI.
        "test": ["pytest>=7", "hypothesis>=6", "pytest-xdist>=3", "pytest-timeout>=2.1"],
    },
    entry_points={},
    cmdclass={"build_py": BuildPyWithConfigs},
)
