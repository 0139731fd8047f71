#!/usr/bin/env python3
"""Check that a packed model loads as a user loads it, offline, and synthesizes speech.

Loads ``ZIP`` with ``Text2Speech.from_pretrained(model_tag=ZIP)`` (ESPnet's documented way,
through espnet_model_zoo, which unpacks a local zip into its cache), synthesizes one sentence
(a multi-speaker model as speaker id 1, its first trained speaker: ESPnet keeps 0 for ``<unk>``)
and checks that the waveform is non-empty and finite. espnet_model_zoo caches a local zip by its
path and never looks at it again, so a model re-packed at the same path would load stale: the
cache entry of ``ZIP`` is removed first.

Offline means offline: before anything is imported, every network connection and host name
lookup of this process is refused (``OSError``) and recorded, so a model that needs a download
(an NLTK corpus, a pretrained vocoder, a model-zoo table) fails the check even where the machine
is online, and even when the library that tried swallows the error. Local (Unix) sockets work.

Usage: local/check_packed_model.py [--text "Sentence."] [--wav out.wav] ZIP
"""

import argparse
import logging
import shutil
import socket
import sys
from pathlib import Path


def block_network() -> list:
    """Refuse and record every network connection and name lookup of this process from now on.

    Returns the list that each attempt is appended to (a description, e.g. "connect to
    ('1.2.3.4', 443)").
    """
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(description: str):
        attempts.append(description)
        raise OSError(f"check_packed_model.py: network access while checking offline loading: {description}")

    def connect(sock, address):
        if sock.family == socket.AF_UNIX:
            return real_connect(sock, address)
        refuse(f"connect to {address!r}")

    def connect_ex(sock, address):
        if sock.family == socket.AF_UNIX:
            return real_connect_ex(sock, address)
        refuse(f"connect to {address!r}")

    def lookup(name):
        def refused(host, *args, **kwargs):
            refuse(f"{name}({host!r})")

        return refused

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, lookup(name))
    return attempts


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
    attempts = block_network()
    clear_cached_unpacking(args.zip)

    import numpy as np
    from espnet2.bin.tts_inference import Text2Speech

    tts = Text2Speech.from_pretrained(model_tag=str(args.zip), device="cpu")
    # (getattr: a Text2Speech without the property, or a stand-in for it, is single-speaker.)
    speaker = {"sids": np.array([1])} if getattr(tts, "use_sids", False) else {}
    wav = tts(args.text, **speaker)["wav"].numpy()
    if attempts:
        # The loading went on (the caller caught the refusal) but would have needed the network.
        print(
            f"check_packed_model.py: {args.zip}: loading or synthesis tried the network, which a "
            f"user offline does not have: {'; '.join(attempts)}",
            file=sys.stderr,
        )
        return 1
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
