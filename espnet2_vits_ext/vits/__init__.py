"""Our VITS model: the modules of the generator and the ``fast_vits`` model itself.

Every module takes the constructor arguments of its ESPnet counterpart in
``espnet2/gan_tts/vits/`` and has the same ``state_dict`` keys, so ESPnet's weights load
into ours (and back) with ``strict=True``. Importing this package imports nothing heavy.
"""
