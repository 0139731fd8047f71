"""The bridge to Piper: import a Piper voice (``.onnx`` + ``.onnx.json``) as a packed ESPnet model."""
