"""Synthesis helpers beyond ESPnet's Text2Speech: streaming (chunk-by-chunk) synthesis."""
