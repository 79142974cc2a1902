"""Stream handler: analysis timestamps, fps, keyframes and the JPEG thumbnail window."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from analytics.collector import Frame, y_plane_view
from analytics.handler import StreamHandler, WindowConfig
from analytics.jpeg import JpegEncoder, yuv_thumbnail


def video(width: int = 320, height: int = 180, level: int = 100) -> av.VideoFrame:
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    planes[:height] = level
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def frame(pts_s: float | None, *, session: int = 1, wall: float = 0.0, key: bool = False) -> Frame:
    picture = video()
    return Frame(
        index=0,
        session=session,
        pts_s=pts_s,
        wall=wall,
        key=key,
        gray=y_plane_view(picture, 320),
        video=picture,
    )


def test_file_timestamps_start_at_zero_and_estimate_fps() -> None:
    handler = StreamHandler(live=False)
    stamps = [handler.update(frame(1.4 + i * 0.04, key=i % 50 == 0)) for i in range(100)]
    assert stamps[0] == 0.0 and stamps[-1] == pytest.approx(3.96)
    assert handler.fps == pytest.approx(25.0, rel=0.01)
    assert handler.keyframes == 2 and handler.last_keyframe_ts == pytest.approx(2.0)


def test_missing_pts_continue_from_the_fps_estimate() -> None:
    handler = StreamHandler(live=False)
    for i in range(10):
        handler.update(frame(i * 0.1))
    assert handler.update(frame(None)) == pytest.approx(1.0)


def test_live_sessions_are_anchored_to_the_wall_clock() -> None:
    handler = StreamHandler(live=True)
    assert handler.update(frame(None, wall=1000.0)) == 1000.0  # first RTSP frame: no pts
    assert handler.update(frame(0.04, wall=1000.05)) == pytest.approx(1000.04)
    # reconnect: pts restart near zero, time goes on from the new wall clock
    assert handler.update(frame(0.0, session=2, wall=1100.0)) == pytest.approx(1100.0)
    assert handler.update(frame(0.04, session=2, wall=1100.1)) == pytest.approx(1100.04)


def test_backward_pts_jump_does_not_move_time_backwards() -> None:
    handler = StreamHandler(live=False)
    for i in range(50):
        handler.update(frame(100 + i * 0.04))
    after = handler.update(frame(3.0))
    assert after > 1.96


def test_window_spreads_thumbnails_over_the_event_with_margins() -> None:
    window = WindowConfig(frames=5, pre_s=1.0, post_s=1.0, thumb_interval_s=0.25)
    handler = StreamHandler(live=False, window=window)
    for i in range(250):
        handler.update(frame(i * 0.04))
    picked = handler.select_window(4.0, 6.0)
    assert len(picked) == 5
    assert picked[0].ts == pytest.approx(3.0, abs=0.05)
    assert picked[-1].ts == pytest.approx(7.0, abs=0.05)
    assert len(handler.select_window(9.9, 9.9)) == 4  # the clip ends: only 8.9 .. 9.96


def test_ring_forgets_old_thumbnails() -> None:
    handler = StreamHandler(live=False, window=WindowConfig(ring_s=2.0))
    for i in range(250):
        handler.update(frame(i * 0.04))
    assert handler.select_window(1.0, 1.0) == []
    assert handler.select_window(9.0, 9.0)


@pytest.mark.parametrize(("width", "height"), [(320, 180), (1280, 720), (1920, 1080), (642, 362)])
def test_thumbnails_are_decodable_jpegs_about_320_wide(width: int, height: int) -> None:
    y, u, v = yuv_thumbnail(video(width, height, level=200), 320)
    assert y.shape[0] % 4 == 0 and u.shape == v.shape == (y.shape[0] // 2, y.shape[1] // 2)
    encoder = JpegEncoder()
    for _ in range(2):  # the encoder context is reused
        data = encoder.encode(y, u, v)
        with av.open(io.BytesIO(data), "r") as container:
            decoded = next(container.decode(video=0))
        assert (decoded.width, decoded.height) == (y.shape[1], y.shape[0])
        assert 300 <= decoded.width <= 330
        luma = np.asarray(decoded.to_ndarray(format="gray"))
        assert abs(float(luma.mean()) - 200) < 30
