"""Objective evaluation of synthesized speech and the static HTML listening report.

One topic per module:

* ``data_files``: reading Kaldi-style ``wav.scp``/``text`` maps, ESPnet ``durations``, wave files.
* ``acoustic_features``: WORLD F0 and mel-cepstrum (pyworld + pysptk).
* ``dtw``: dynamic time warping between two feature sequences.
* ``mel_cepstral_distortion``, ``pitch``, ``duration``: the metrics.
* ``intelligibility``: word error rate of speech by an offline recognizer (PocketSphinx).
* ``utterance_metrics``: all metrics of one utterance pair, averages (per speaker too),
  metrics.json/metrics.tsv.
* ``spectrogram``, ``alignment_plot``, ``training_curves``: the figures.
* ``report``: the self-contained HTML listening report (``report_assets``: its style and script).
"""
