"""espnet2-vits-ext: VITS text-to-speech as an ESPnet2 plugin (``tts: fast_vits``).

Importing this package only installs the lazy registration hook
(:mod:`espnet2_vits_ext.registration.import_hook`); the model itself is imported when ESPnet's
task modules are, so ``import espnet2_vits_ext`` stays fast and quiet.
"""

from espnet2_vits_ext.registration.import_hook import install as _install_registration_hook

_install_registration_hook()
