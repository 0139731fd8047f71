"""Lazy registration of our model into ESPnet2, run at interpreter start-up.

ESPnet builds its model choices (``espnet2.train.class_choices.ClassChoices``) from
module-level dicts when ``espnet2.tasks.gan_tts`` / ``espnet2.tasks.tts`` are imported.
For ESPnet's own entry points (``python -m espnet2.bin.gan_tts_train``,
``espnet2.bin.tts_inference``, ``Text2Speech.from_pretrained``) to know ``tts: fast_vits``
in a fresh process, without the user importing this package, the pip package installs
``espnet2_vits_ext.pth`` into site-packages. Python executes its single line at start-up,
which calls :func:`install`. That adds a ``sys.meta_path`` finder which does nothing until
one of the modules in ``_AFTER_IMPORT`` is imported; then, right after that module has run,
it calls the matching hook. Start-up cost: this file (standard library only), no torch.

The same finder keeps ``import g2p_en`` (pulled in by every ``espnet2.tasks`` module)
from trying NLTK downloads: offline they fail slowly and noisily, see
:func:`_import_g2p_en_offline`.
"""

import importlib.abc
import importlib.util
import os
import sys
from typing import Callable, Dict


def _register_choices(module) -> None:
    from espnet2_vits_ext.registration import register_tts_choice

    register_tts_choice(module)


def _register_virtual_subclass(module) -> None:
    from espnet2_vits_ext.registration import register_as_espnet_vits

    register_as_espnet_vits(module)


_AFTER_IMPORT: Dict[str, Callable] = {
    "espnet2.tasks.gan_tts": _register_choices,
    "espnet2.tasks.tts": _register_choices,
    "espnet2.gan_tts.vits": _register_virtual_subclass,
}


class _NoNetworkNltkDownload:
    """Stands in for ``nltk.download`` while ``g2p_en`` runs its module body.

    g2p_en calls ``nltk.download`` at import time when its tagger or CMUdict data is
    missing. Set ``ESPNET2_VITS_EXT_NLTK_DOWNLOAD=1`` to let it download (online machines).
    Missing data then surfaces as NLTK's own ``LookupError`` when g2p is first used, which
    the recipe's text stage turns into an install hint.
    """

    def __init__(self):
        self.skipped = []

    def __call__(self, info_or_id=None, *args, **kwargs) -> bool:
        self.skipped.append(info_or_id)
        return False


def _import_g2p_en_offline(loader, module) -> None:
    if os.environ.get("ESPNET2_VITS_EXT_NLTK_DOWNLOAD") == "1":
        loader.exec_module(module)
        return
    import nltk

    real_download = nltk.download
    nltk.download = _NoNetworkNltkDownload()
    try:
        loader.exec_module(module)
    finally:
        nltk.download = real_download


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader, fullname: str):
        self._loader = loader
        self._fullname = fullname

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        if self._fullname == "g2p_en.g2p":
            _import_g2p_en_offline(self._loader, module)
            return
        self._loader.exec_module(module)
        _AFTER_IMPORT[self._fullname](module)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    _names = set(_AFTER_IMPORT) | {"g2p_en.g2p"}

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._names:
            return None
        # Find the real spec with the remaining finders, then wrap its loader.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _HookedLoader(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Install the finder once; hook modules that are already imported right away."""
    if any(isinstance(finder, _AfterImportFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _AfterImportFinder())
    for name, hook in _AFTER_IMPORT.items():
        if name in sys.modules:
            hook(sys.modules[name])
