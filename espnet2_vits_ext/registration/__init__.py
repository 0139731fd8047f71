"""How ESPnet2 learns of ``tts: fast_vits``: a start-up import hook and the choice tables it fills."""
