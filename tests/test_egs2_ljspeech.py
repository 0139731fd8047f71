"""egs2/ljspeech/tts1: the root's recipe in ESPnet's place, one source, runnable from there.

The recipe directory holds relative links into the repository root (as ESPnet's recipes link to
``egs2/TEMPLATE``). The run test copies the links into a stand-in repository under tmp_path whose
root entries link to the real ones, so the relative links are the ones exercised and the recipe's
default ``data/ dump/ exp/ downloads/`` land in the temporary recipe directory, not the checkout.
Stages 1-3 only: the full mini run is covered from the root by test_recipe_end_to_end.
"""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs2" / "ljspeech" / "tts1"
SHARED = ("run.sh", "conf", "local", "utils", "tools", "path.sh", "cmd.sh")


def test_recipe_entries_are_relative_links_to_the_root():
    for name in SHARED:
        entry = RECIPE / name
        assert entry.is_symlink(), f"{entry} is not a link"
        assert not os.readlink(entry).startswith("/"), f"{entry} links to an absolute path"
        assert entry.resolve() == (ROOT / name).resolve()


def stand_in_repository(tmp_path: Path) -> Path:
    """A repository whose root entries link to the real ones and whose egs2/ is a copy of the links."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (*SHARED, ".venv", "setup.py", "espnet2_vits_ext"):
        (repo / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "egs2" / "ljspeech", repo / "egs2" / "ljspeech", symlinks=True)
    return repo / "egs2" / "ljspeech" / "tts1"


def test_first_stages_run_from_the_recipe_directory_and_write_there(tmp_path):
    recipe = stand_in_repository(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["./run.sh", "--corpus", "mini", "--stage", "1", "--stop_stage", "3", "--nj", "2"]
    result = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Successfully finished." in result.stdout
    assert len((recipe / "downloads" / "mini" / "metadata.csv").read_text().splitlines()) == 240
    for name in ("train", "val", "test"):
        assert (recipe / "data" / name / "wav.scp").is_file()
        dumped = (recipe / "dump" / "raw" / name / "wav.scp").read_text().splitlines()
        assert dumped and all((recipe / line.split()[1]).is_file() for line in dumped)  # relative to the recipe
    assert list((recipe / "exp" / "logs").glob("run.*.log"))
    # The stages' scripts and the environment are the root's: nothing was created beside them.
    assert not (recipe / ".venv").exists() and not (ROOT / "egs2" / "ljspeech" / "tts1" / "data").exists()


def test_run_sh_elsewhere_names_both_places(tmp_path):
    result = subprocess.run([str(RECIPE / "run.sh"), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert "run me from the repository root" in result.stderr and "egs2/<corpus>/tts1" in result.stderr
