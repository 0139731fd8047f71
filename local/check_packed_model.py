#!/usr/bin/env python3
"""Check that a packed model loads as a user loads it, offline, and synthesizes speech.

Loads ``ZIP`` with ``Text2Speech.from_pretrained(model_tag=ZIP)`` (ESPnet's documented way,
through espnet_model_zoo, which unpacks a local zip into its cache), synthesizes one sentence
and checks that the waveform is non-empty and finite. espnet_model_zoo caches a local zip by its
path and never looks at it again, so a model re-packed at the same path would load stale: the
cache entry of ``ZIP`` is removed first.

Usage: local/check_packed_model.py [--text "Sentence."] [--wav out.wav] ZIP
"""

import argparse
import logging
import shutil
import sys
from pathlib import Path


def clear_cached_unpacking(zip_path: Path) -> None:
    """Remove espnet_model_zoo's unpacked copy of ``zip_path``, if any (it is keyed by path)."""
    from espnet_model_zoo.downloader import ModelDownloader, str_to_hash

    cached = ModelDownloader().cachedir / str_to_hash(zip_path.absolute())
    if cached.exists():
        shutil.rmtree(cached)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zip", type=Path, help="packed model (espnet2.bin.pack tts)")
    parser.add_argument("--text", default="The packed model speaks.", help="sentence to synthesize")
    parser.add_argument("--wav", type=Path, default=None, help="also write the waveform here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    clear_cached_unpacking(args.zip)

    import numpy as np
    from espnet2.bin.tts_inference import Text2Speech

    tts = Text2Speech.from_pretrained(model_tag=str(args.zip), device="cpu")
    wav = tts(args.text)["wav"].numpy()
    if wav.ndim != 1 or wav.size == 0 or not np.isfinite(wav).all():
        print(f"check_packed_model.py: {args.zip}: bad waveform (shape {wav.shape})", file=sys.stderr)
        return 1
    if args.wav is not None:
        import soundfile

        soundfile.write(args.wav, wav, tts.fs)
    print(f"{args.zip}: loads; {wav.size / tts.fs:.2f} s of audio at {tts.fs} Hz for {args.text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
