"""The environment: quiet, light package import; ESPnet imports offline; the .pth hook."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run in a child interpreter: records every attempt to resolve a host name or open a
# connection, then imports what the test names.
NETWORK_SPY = """
import socket, sys
attempts = []
def _refuse(kind):
    def refuse(*args, **kwargs):
        attempts.append((kind, args[:2]))
        raise OSError("network access attempted in an offline test")
    return refuse
socket.getaddrinfo = _refuse("getaddrinfo")
socket.create_connection = _refuse("create_connection")
socket.socket.connect = _refuse("connect")
{body}
print("NETWORK_ATTEMPTS", attempts)
"""


def run_python(code: str, env_update=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_update or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_package_import_is_quiet_and_does_not_load_torch():
    result = run_python(
        "import sys, espnet2_vits_ext; print('torch' in sys.modules, 'espnet2' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False False\n"
    assert result.stderr == ""


# NLTK searches NLTK_DATA and then fixed places (~/nltk_data, <venv>/nltk_data,
# /usr/share/nltk_data, ...): only an emptied search path guarantees that g2p_en finds no data
# and reaches its nltk.download calls. Both download functions are spied on: NLTK's own (what
# g2p_en would call without the hook) and the hook's stand-in.
NLTK_WITHOUT_DATA = """
import json, os, nltk
import espnet2_vits_ext.registration.offline_shims as shims
nltk.data.path[:] = [os.environ["NLTK_DATA"]]
downloads = {"nltk": [], "stand_in": []}
real_download, stand_in = nltk.download, shims.NoNetworkNltkDownload.__call__
def spy_nltk(info_or_id=None, *args, **kwargs):
    downloads["nltk"].append(info_or_id)
    return real_download(info_or_id, *args, **kwargs)
def spy_stand_in(self, info_or_id=None, *args, **kwargs):
    downloads["stand_in"].append(info_or_id)
    return stand_in(self, info_or_id, *args, **kwargs)
nltk.download, shims.NoNetworkNltkDownload.__call__ = spy_nltk, spy_stand_in
import espnet2.tasks.gan_tts, espnet2.tasks.tts
print("IMPORTED")
print("DOWNLOADS", json.dumps(downloads))
"""


def test_espnet_tasks_import_offline_without_network_attempts(tmp_path):
    code = NETWORK_SPY.format(body=NLTK_WITHOUT_DATA)
    result = run_python(code, {"NLTK_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "IMPORTED" in result.stdout.splitlines(), result.stdout
    assert "NETWORK_ATTEMPTS []" in result.stdout, result.stdout
    downloads = json.loads(result.stdout.split("DOWNLOADS ", 1)[1].splitlines()[0])
    # g2p_en asked for both of its data packages, and only the hook's stand-in answered.
    assert downloads == {"nltk": [], "stand_in": ["averaged_perceptron_tagger_eng", "cmudict"]}
    assert "nltk_data" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded into the data dir


def test_package_import_under_path_sh_prints_nothing():
    # As a user runs it; path.sh's own espeak-ng set-up runs too (the variables are unset here).
    env = {k: v for k, v in os.environ.items() if k not in ("PHONEMIZER_ESPEAK_LIBRARY", "ESPEAK_DATA_PATH")}
    result = subprocess.run(
        ["bash", "-c", '. ./path.sh && python -c "import espnet2_vits_ext"'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("", "")


def test_chromium_installer_stops_loudly_for_a_user_without_chromium(tmp_path):
    # tools/run_tests.sh runs it before pytest: without Chromium and without root it must stop
    # with the install command. A PATH with bash and an `id` that answers uid 1000, no browser.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash"))
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash"), "tools/install_chromium.sh"], cwd=REPO, capture_output=True, text=True,
        env={"PATH": str(bin_dir), "CHROMIUM_BINARY": ""}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert "Chromium is missing and this is not root; install it with:" in result.stderr
    assert "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends chromium'" in result.stderr


def test_installer_without_python311_stops_loudly_for_a_user(tmp_path):
    # A fresh checkout (no .venv) on a machine without Python 3.11, not root: the installer
    # must stop with the apt command (as root it would run it). PATH: bash, dirname, an `id`
    # that answers uid 1000, and no python at all.
    checkout = tmp_path / "checkout"
    for script in ("tools/setup_env.sh", "utils/apt_install.sh"):
        (checkout / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / script, checkout / script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    result = subprocess.run(
        [shutil.which("bash"), "tools/setup_env.sh"], cwd=checkout, capture_output=True, text=True,
        env={"PATH": str(bin_dir)}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert "Python 3.11 is missing (PYTHON=/path/to/python3.11 chooses one) and this is not root" in result.stderr
    assert ("sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv'"
            in result.stderr)
    assert not (checkout / ".venv").exists()


def test_startup_hook_registers_fast_vits_in_espnet_tasks():
    code = (
        "import espnet2.tasks.gan_tts as gan, espnet2.tasks.tts as tts;"
        "print('fast_vits' in gan.tts_choices.classes, 'fast_vits' in tts.tts_choices.classes)"
    )
    assert run_python(code).stdout.strip().endswith("True True")
    disabled = run_python(code, {"ESPNET2_VITS_EXT_DISABLE_HOOK": "1"})
    assert disabled.stdout.strip().endswith("False False"), disabled.stderr


def test_explicit_import_registers_even_when_startup_hook_is_disabled():
    code = (
        "import espnet2.tasks.gan_tts as gan; import espnet2_vits_ext;"
        "print('fast_vits' in gan.tts_choices.classes)"
    )
    result = run_python(code, {"ESPNET2_VITS_EXT_DISABLE_HOOK": "1"})
    assert result.stdout.strip().endswith("True"), result.stderr


@pytest.mark.parametrize("preset", [None, "300"])
def test_model_import_raises_onednn_kernel_cache_unless_the_user_set_it(preset):
    """Synthesis over many sentence lengths in both precisions builds more oneDNN kernels
    than its default cache holds (1024), so importing the model raises the capacity before
    any kernel is built; a capacity the user chose stays."""
    from espnet2_vits_ext.acceleration.packed_conv import PRIMITIVE_CACHE_CAPACITY

    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    code = ("import os, espnet2.tasks.tts; from espnet2_vits_ext.vits.fast_vits import FastVITS;"
            "print('CAPACITY', os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert f"CAPACITY {preset or PRIMITIVE_CACHE_CAPACITY}" in result.stdout, result.stderr


def test_phonemizer_finds_bundled_espeak_without_environment_variables():
    env = {"PHONEMIZER_ESPEAK_LIBRARY": "", "ESPEAK_DATA_PATH": ""}
    code = (
        "import os\n"
        "for name in ('PHONEMIZER_ESPEAK_LIBRARY', 'ESPEAK_DATA_PATH'): os.environ.pop(name)\n"
        "from phonemizer import phonemize\n"
        "print(phonemize('hello', language='en-us', backend='espeak', strip=True))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "həloʊ"


def test_wheel_carries_the_registration_pth(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("espnet2_vits_ext-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "espnet2_vits_ext.pth" in names  # at the root: lands in site-packages
    assert "espnet2_vits_ext/registration/import_hook.py" in names
    assert "espnet2_vits_ext/registration/offline_shims.py" in names


def test_environment_installer_is_idempotent():
    result = subprocess.run(
        ["bash", "tools/setup_env.sh", "--with-tests"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # nothing to do the second time


# local/check_packed_model.py (stage 7) with Text2Speech replaced by a stand-in whose loading
# runs {load} first: the check's own network block, decisions and messages, without a model.
PACKED_CHECK = """
import sys, types
import numpy as np
sys.path.insert(0, "local")
import check_packed_model

class Waveform:
    def numpy(self):
        return np.full(2205, 0.1, dtype=np.float32)

class Text2Speech:
    fs = 22050
    @classmethod
    def from_pretrained(cls, model_tag, device):
{load}
        return cls()
    def __call__(self, text):
        return {{"wav": Waveform()}}

sys.modules["espnet2.bin.tts_inference"] = types.SimpleNamespace(Text2Speech=Text2Speech)
sys.exit(check_packed_model.main(["missing.zip"]))
"""


def run_packed_check(load: str) -> subprocess.CompletedProcess:
    return run_python(PACKED_CHECK.format(load=load))


def test_packed_model_check_passes_offline_loading():
    result = run_packed_check("        import socket; a, b = socket.socketpair(socket.AF_UNIX); a.close(); b.close()")
    assert result.returncode == 0, result.stderr
    assert "missing.zip: loads; 0.10 s of audio at 22050 Hz" in result.stdout


def test_packed_model_check_fails_on_network_access():
    # A download attempt fails at once, with the check's message, even where the network is up.
    result = run_packed_check(
        "        import urllib.request; urllib.request.urlopen('http://example.com/model.zip', timeout=5)"
    )
    assert result.returncode == 1
    assert "network access while checking offline loading: getaddrinfo('example.com')" in result.stderr
    # A library that catches the refusal and carries on (a fallback) still fails the check.
    result = run_packed_check(
        "        import socket\n"
        "        try:\n"
        "            socket.create_connection(('192.0.2.1', 443), timeout=5)\n"
        "        except OSError:\n"
        "            pass\n"
        "        sock = socket.socket()\n"
        "        try:\n"
        "            sock.connect(('192.0.2.1', 80))\n"
        "        except OSError:\n"
        "            pass"
    )
    assert result.returncode == 1
    assert "loading or synthesis tried the network, which a user offline does not have: " in result.stderr
    assert "getaddrinfo('192.0.2.1'); connect to ('192.0.2.1', 80)" in result.stderr
    assert "loads;" not in result.stdout
