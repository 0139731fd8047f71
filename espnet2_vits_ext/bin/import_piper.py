"""Import a Piper voice into a packed ESPnet model (``tts: fast_vits``) for synthesis.

Reads ``VOICE.onnx`` and ``VOICE.onnx.json`` beside it and writes ``OUT.zip``, which
``Text2Speech.from_pretrained(model_tag="OUT.zip")`` loads; see docs/piper.md. Bad input
is one error line naming the file, exit status 2, and no ``OUT.zip``.

Usage: python -m espnet2_vits_ext.bin.import_piper VOICE.onnx OUT.zip
"""

import argparse
import logging
import sys

from espnet2_vits_ext.piper.errors import PiperVoiceError


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m espnet2_vits_ext.bin.import_piper",
        description="Import a Piper voice (.onnx + .onnx.json) as a packed fast_vits model, for synthesis.",
    )
    parser.add_argument("voice", help="the Piper voice, VOICE.onnx (its VOICE.onnx.json beside it)")
    parser.add_argument("output", help="the packed model to write, OUT.zip")
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (import_piper) %(levelname)s: %(message)s")
    from espnet2_vits_ext.piper.import_voice import import_voice

    try:
        imported = import_voice(args.voice, args.output)
    except PiperVoiceError as error:
        print(f"import_piper: error: {error}", file=sys.stderr)
        return 2
    print(f"{imported.zip_path}: Piper {imported.preset} voice, {imported.config.sample_rate} Hz, "
          f"{imported.parameters / 1e6:.2f} M generator parameters (synthesis only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
