"""Training that loses nothing: ESPnet's GAN trainer, extended.

* :mod:`.checkpoint`: atomic, checksummed checkpoint files with the RNG state and the
  position inside the epoch, kept in rotation; choosing the newest good one on resume.
* :mod:`.epoch_models`: ESPnet's epoch models, checked on resume and rebuilt if a kill or a
  full disk cut their write short.
* :mod:`.nonfinite`: optimizer steps with a non-finite loss or gradient are skipped,
  counted, and training stops after too many in a row.
* :mod:`.precision`: ``--precision fp32|fp16|bf16``.
* :mod:`.memory`: a trial step on the largest batches before the first epoch.
* :mod:`.tensorboard_views`: spectrograms, alignment and audio of a validation utterance.
* :mod:`.trainer`: :class:`ResilientGANTrainer`, which wires these into ESPnet's
  ``GANTrainer``; :mod:`.task`: the ``GANTTSTask`` that uses it.
"""
