"""Export a packed ``fast_vits`` model as a Piper voice (``<name>.onnx`` + ``<name>.onnx.json``).

The voice speaks through Piper's runtime (``piper -m OUTDIR/<name>.onnx``), its C++ runtime
included: see :mod:`espnet2_vits_ext.piper.export_voice` and docs/piper.md. A model that
cannot be exported (not a zip, not ``fast_vits``, a g2p Piper cannot stand in for) is one
error line and exit status 2, with nothing left in OUTDIR.

Usage: python -m espnet2_vits_ext.bin.export_piper MODEL.zip OUTDIR [--name NAME] [--espeak_voice en-us]
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="packed model (.zip of espnet2.bin.pack tts, stage 7)")
    parser.add_argument("out_dir", type=Path, help="folder of the voice (made if missing)")
    parser.add_argument("--name", default=None, help="file name of the voice (default: the zip's name)")
    parser.add_argument("--espeak_voice", default=None,
                        help="espeak-ng voice Piper phonemizes with (default: the one of the model's g2p)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from espnet2_vits_ext.piper.export_voice import PiperExportError, export_voice

    try:
        onnx_path, json_path = export_voice(args.model, args.out_dir, args.name, args.espeak_voice)
    except PiperExportError as error:
        print(f"export_piper: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"export_piper: error: cannot write {error.filename or args.out_dir}: {error.strerror or error}",
              file=sys.stderr)
        return 2
    print(f"export_piper: wrote {onnx_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
