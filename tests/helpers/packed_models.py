"""A tiny ``fast_vits`` voice packed as stage 7 packs a trained one, for the tests of the CLIs
that load packed models (``synthesize``, ``export_piper``).

The model is built by ESPnet's ``GANTTSTask`` from a given ``tts_conf`` (e.g. conftest's
``tiny_tts_conf()``, or ``tiny_conditioned_tts_conf(spks=2)`` for a two-speaker voice) with a
12-token phoneme vocabulary, seeded, saved, and packed with ``espnet2.bin.pack``.
"""

from pathlib import Path

import torch
import yaml
from espnet2.bin.pack import pack
from espnet2.tasks.gan_tts import GANTTSTask

# 12 tokens = the tiny model's vocabulary; other phonemes are read as <unk>.
TOKENS = ["<blank>", "<unk>", "<space>", "ə", "ˈ", "n", "t", "s", "l", "ɪ", "d", "<sos/eos>"]


def pack_tiny_voice(root: Path, tts_conf: dict, name: str = "packed", model: str = "fast_vits") -> Path:
    """Write ``root/{tokens.txt, config.yaml, model.pth}`` and pack them into ``root/<name>.zip``.

    Args:
        root: Folder for the files and the zip (made if missing).
        tts_conf: The model's ``tts_conf``.
        name: The zip's name without ``.zip``.
        model: ``tts`` choice: ``fast_vits``, or ``vits`` for ESPnet's own VITS.

    Returns:
        Path: The zip (``Text2Speech.from_pretrained(model_tag=...)`` loads it; the unpacked
        files beside it load with ``Text2Speech(train_config=..., model_file=...)``).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    args = GANTTSTask.get_parser().parse_args(
        ["--token_list", str(root / "tokens.txt"), "--token_type", "phn", "--cleaner", "tacotron",
         "--g2p", "espeak_ng_english_us_vits", "--tts", model, "--feats_extract", "linear_spectrogram",
         "--output_dir", str(root)]
    )
    args.tts_conf = tts_conf
    args.feats_extract_conf = dict(n_fft=64, hop_length=16, win_length=None)
    torch.manual_seed(0)
    torch.save(GANTTSTask.build_model(args).state_dict(), root / "model.pth")
    with open(root / "config.yaml", "w") as config_file:
        yaml.safe_dump(vars(args), config_file)
    zip_path = root / f"{name}.zip"
    pack(files=dict(model_file=str(root / "model.pth")), yaml_files=dict(train_config=str(root / "config.yaml")),
         option=[], outpath=str(zip_path))
    return zip_path
