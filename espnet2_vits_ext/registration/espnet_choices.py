"""Registration of :class:`FastVITS` into ESPnet2 (called by :mod:`.import_hook`).

Two things make ESPnet treat our model as its own:

* ``tts: fast_vits`` in a config: ESPnet's ``ClassChoices`` keeps a plain dict of
  lower-case names to classes, read when a parser or a model is built, so adding an
  entry to ``espnet2.tasks.gan_tts.tts_choices`` (training) and
  ``espnet2.tasks.tts.tts_choices`` (what ``Text2Speech`` loads through) is enough.
* ``Text2Speech`` passes ``noise_scale``, ``noise_scale_dur`` and ``alpha`` only when
  ``isinstance(tts, espnet2.gan_tts.vits.VITS)``. ESPnet's VITS is an abstract base
  class (``ABCMeta``), so we register ours as a virtual subclass: ``isinstance`` holds
  without inheriting any of ESPnet's code.
"""

MODEL_NAME = "fast_vits"


def register_tts_choice(task_module) -> None:
    """Add ``fast_vits`` to ``task_module.tts_choices`` (a task module of ESPnet2)."""
    from espnet2_vits_ext.vits.fast_vits import FastVITS

    task_module.tts_choices.classes[MODEL_NAME] = FastVITS


def register_as_espnet_vits(vits_package) -> None:
    """Make ``isinstance(FastVITS(...), espnet2.gan_tts.vits.VITS)`` true."""
    from espnet2_vits_ext.vits.fast_vits import FastVITS

    vits_package.VITS.register(FastVITS)
