"""The environment: quiet, light package import; ESPnet imports offline; the .pth hook."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_espnet_tasks_import_offline_without_network_attempts():
    code = NETWORK_SPY.format(body="import espnet2.tasks.gan_tts, espnet2.tasks.tts")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "NETWORK_ATTEMPTS []" in result.stdout, result.stdout
    assert "nltk_data" not in result.stderr


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
    assert "espnet2_vits_ext/autoregister.py" in names


def test_environment_installer_is_idempotent():
    result = subprocess.run(
        ["bash", "local/setup_env.sh", "--with-tests"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # nothing to do the second time
