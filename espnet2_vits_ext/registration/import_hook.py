"""Lazy registration of our model into ESPnet2, run at interpreter start-up.

ESPnet builds its model choices (``espnet2.train.class_choices.ClassChoices``) from
module-level dicts when ``espnet2.tasks.gan_tts`` / ``espnet2.tasks.tts`` are imported.
For ESPnet's own entry points (``python -m espnet2.bin.gan_tts_train``,
``espnet2.bin.tts_inference``, ``Text2Speech.from_pretrained``) to know ``tts: fast_vits``
in a fresh process, without the user importing this package, the pip package installs
``espnet2_vits_ext.pth`` into site-packages. Python executes its single line at start-up:
it imports this package, whose ``__init__`` calls :func:`install`. That adds a
``sys.meta_path`` finder which does nothing until one of the modules in ``_IMPORT_HOOKS``
is imported, and then runs that module through its hook. Start-up cost: this file and
:mod:`.offline_shims` (standard library only); no torch, no ESPnet.

Besides registration, the finder runs the two offline shims of :mod:`.offline_shims`
(``g2p_en`` without NLTK downloads, ``phonemizer`` with the bundled espeak-ng).

Set ``ESPNET2_VITS_EXT_DISABLE_HOOK=1`` to keep the ``.pth`` file from installing the
finder at start-up; an explicit ``import espnet2_vits_ext`` still installs it.
"""

import importlib.abc
import sys
from typing import Callable, Dict

from espnet2_vits_ext.registration.offline_shims import (
    import_g2p_en_offline,
    import_phonemizer_with_bundled_espeak,
)


def _register_choices(task_module) -> None:
    from espnet2_vits_ext.registration.espnet_choices import register_tts_choice

    register_tts_choice(task_module)


def _register_virtual_subclass(vits_package) -> None:
    from espnet2_vits_ext.registration.espnet_choices import register_as_espnet_vits

    register_as_espnet_vits(vits_package)


def _register_piper_g2p(phoneme_tokenizer_module) -> None:
    from espnet2_vits_ext.text.piper_phonemes import register_g2p

    register_g2p(phoneme_tokenizer_module)


# Modules whose content we extend right after they ran; also applied by install() to
# those already imported.
_AFTER_IMPORT: Dict[str, Callable] = {
    "espnet2.tasks.gan_tts": _register_choices,
    "espnet2.tasks.tts": _register_choices,
    "espnet2.gan_tts.vits": _register_virtual_subclass,
    # Piper's phonemization as g2p types piper_espeak_<voice> (imported Piper voices).
    "espnet2.text.phoneme_tokenizer": _register_piper_g2p,
}


def _run_then(after: Callable) -> Callable:
    def run(loader, module) -> None:
        loader.exec_module(module)
        after(module)

    return run


_IMPORT_HOOKS: Dict[str, Callable] = {
    **{name: _run_then(after) for name, after in _AFTER_IMPORT.items()},
    # offline shims (see their module for why each exists)
    "g2p_en.g2p": import_g2p_en_offline,
    "phonemizer": import_phonemizer_with_bundled_espeak,
}


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader; ``exec_module`` goes through the module's hook."""

    def __init__(self, loader, hook: Callable):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._hook(self._loader, module)


class _ImportHookFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        hook = _IMPORT_HOOKS.get(fullname)
        if hook is None:
            return None
        # Let the remaining finders locate the module, then wrap its loader.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _HookedLoader(spec.loader, hook)
                return spec
        return None


def install() -> None:
    """Install the finder once; extend modules that are already imported right away."""
    if any(isinstance(finder, _ImportHookFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _ImportHookFinder())
    for name, after in _AFTER_IMPORT.items():
        if name in sys.modules:
            after(sys.modules[name])
