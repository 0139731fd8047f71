"""Offline shims: two third-party imports that ESPnet's TTS tasks pull in, made to work offline.

The finder of :mod:`.import_hook` runs each of these in place of the module's own import.
Standard library only at module level: this file is read at interpreter start-up.

* :func:`import_g2p_en_offline`: ``g2p_en`` (imported by every ``espnet2.tasks`` module) calls
  ``nltk.download`` in its module body when NLTK's data is missing; offline that fails
  slowly and noisily, in every process, before anything useful happens.
* :func:`import_phonemizer_with_bundled_espeak`: ``phonemizer`` finds espeak-ng only through
  ``PHONEMIZER_ESPEAK_LIBRARY`` or a system package; a packed voice
  (``g2p: espeak_ng_english_us_vits``) should synthesize without either.
"""

import os

NLTK_DOWNLOAD_VARIABLE = "ESPNET2_VITS_EXT_NLTK_DOWNLOAD"


class NoNetworkNltkDownload:
    """Stands in for ``nltk.download`` while ``g2p_en`` runs its module body.

    Why: ``g2p_en`` asks NLTK to download its data at import time, and every ESPnet task
    imports ``g2p_en``; offline, each training or inference process would wait on the
    network first. With the stand-in, missing data surfaces as NLTK's own ``LookupError``
    when g2p_en is first used, which the recipe's text stage turns into an install hint.
    """

    def __init__(self):
        self.skipped = []

    def __call__(self, info_or_id=None, *args, **kwargs) -> bool:
        self.skipped.append(info_or_id)
        return False


def import_g2p_en_offline(loader, module) -> None:
    """Run ``g2p_en.g2p``'s module body with :class:`NoNetworkNltkDownload` as ``nltk.download``.

    Set ``ESPNET2_VITS_EXT_NLTK_DOWNLOAD=1`` to let it download (machines online).

    Args:
        loader: The module's real loader.
        module: The module object to execute.
    """
    if os.environ.get(NLTK_DOWNLOAD_VARIABLE) == "1":
        loader.exec_module(module)
        return
    import nltk

    real_download = nltk.download
    nltk.download = NoNetworkNltkDownload()
    try:
        loader.exec_module(module)
    finally:
        nltk.download = real_download


def import_phonemizer_with_bundled_espeak(loader, module) -> None:
    """Import ``phonemizer`` pointed at the espeak-ng bundled by ``espeakng-loader``.

    Why: phonemizer reads ``PHONEMIZER_ESPEAK_LIBRARY`` once, when imported; without it, it
    needs a system espeak-ng. A variable the user set wins; without ``espeakng-loader``,
    phonemizer looks for a system espeak-ng as usual.

    Args:
        loader: The module's real loader.
        module: The module object to execute.
    """
    if "PHONEMIZER_ESPEAK_LIBRARY" not in os.environ:
        try:
            import espeakng_loader
        except ImportError:  # no bundled library: phonemizer looks for a system espeak-ng
            pass
        else:
            os.environ["PHONEMIZER_ESPEAK_LIBRARY"] = espeakng_loader.get_library_path()
            os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())
    loader.exec_module(module)
