"""The accuracy suite: ffmpeg ``lavfi`` clips with ground truth, vigil and ffmpeg's detectors
scored against it.

lavfi.py    Clip / Part script → ffmpeg filtergraph, x264 encode
truth.py    the script → per-frame truth labels of every event kind
catalog.py  the suite's clips at any resolution
score.py    match reported intervals with truth spans: interval error (frames), misses, false pos.
ffmpeg.py   blackdetect / freezedetect / scdet on a clip, parsed from ffmpeg's stderr
run.py      vigil's pipeline on a clip, records as intervals
"""
