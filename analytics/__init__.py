"""vigil analytics: the Realeyes levels run by each agent worker, one thread pair per stream.

collector.py   Collector: PyAV decode thread → bounded queue of Frames (Y-plane views)
handler.py     StreamHandler: timestamps, fps, keyframes, ring of JPEG thumbnails
analyzers.py   stream analyzers (motion, scene_change, black_frame, frozen_frame, brightness)
tamper.py      the tamper analyzer (lens covered, view moved, defocused)
detectors.py   their pure numpy measurements
registry.py    ANALYTICS {name, version, params_schema}, validate_params, create_analyzer
schemas.py     the params JSON Schemas (every threshold with its unit)
rules.py       ActionAnalyzer / EventAnalyzer: triggers → actions → events (TOML rules)
records.py     AnalysisRecord (CONTRACT §5) with a window of JPEG frames
spool.py       JetStream / webhook (disk-backed queue) / directory spoolers
pipeline.py    handler → analyzers → rules → records for one stream
worker.py      run_stream(job, stop, counters, on_report, records): the agent's entry point
clips.py       camera-like generated clips with a scripted timeline and its ground truth
accuracy/      ffmpeg lavfi clips with ground truth, a scorer, ffmpeg's detectors beside vigil's

Semantics of records, every analytic and its parameters: docs/analytics.md.
"""
