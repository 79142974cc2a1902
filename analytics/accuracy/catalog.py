"""The clips of the accuracy suite, at any resolution (25 fps, x264 with 3 B-frames, 2 s GOP).

``freezes``  a 26-frame freeze (1.04 s) every 4 s, each with the keyframe somewhere else: on
             its first frame, its second, its middle, its last, right after it, right before
             it; longer freezes; a held last frame (tpad) before a cut; several scenes
``fades``    fades to and from black with and without a black hold, a slow 2 s fade, a dip
             from one scene to another through black, hard cuts between them
``cuts``     hard cuts every 2 s between busy scenes: testsrc2, mandelbrot, life, a scrolling
             colour spectrum, a pan
``motion``   a still noisy picture crossed by a box, in normal light and dark, a dark scene,
             a pan, a short still run that is not a freeze

    for clip in suite(640, 360): render(clip, tmp / f"{clip.name}.mp4")
"""

from __future__ import annotations

from analytics.accuracy.lavfi import Clip, Freeze, Part

__all__ = ["cuts", "fades", "freezes", "motion", "suite"]

_GOP = 50  # frames: 2 s at 25 fps


def freezes(width: int, height: int) -> Clip:
    """Freezes at every keyframe position, in four scenes, and a held frame before a cut."""

    def at(keyframe: int, position: int) -> int:
        """Where a freeze starts for ``keyframe`` to be its ``position``-th frame."""
        return keyframe * _GOP - position

    # Part boundaries are at frames 200, 400, 550; keyframes every 50 frames.
    parts = (
        Part(
            scene="testsrc2",
            frames=200,
            noise=4,
            freezes=(Freeze(at(1, 0), 26), Freeze(at(3, 1), 26)),
        ),
        Part(
            scene="life",
            frames=200,
            seed=3,
            freezes=(Freeze(at(5, 13) - 200, 26), Freeze(at(7, 25) - 200, 26)),
        ),
        Part(
            scene="spectrum",
            frames=150,
            noise=2,
            freezes=(Freeze(at(9, 26) - 400, 26),),
            hold=30,  # frames 519..549 repeat the last picture, then a cut
        ),
        Part(
            scene="mandelbrot",
            frames=200,
            noise=3,
            freezes=(Freeze(at(12, -1) - 550, 26), Freeze(at(14, 40) - 550, 60)),
        ),
    )
    return Clip(name="freezes", parts=parts, width=width, height=height)


def fades(width: int, height: int) -> Clip:
    """Fades out and in through black, a slow fade, a dip between scenes, hard cuts."""
    parts = (
        Part(scene="testsrc2", frames=75, noise=4, fade_out=25),
        Part(scene="black", frames=25),
        Part(scene="mandelbrot", frames=100, noise=2, fade_in=25),
        Part(scene="life", frames=75, seed=2, fade_out=13),
        Part(scene="spectrum", frames=75, noise=3, fade_in=12),
        Part(scene="testsrc2", frames=100, noise=4, fade_out=50),
        Part(scene="black", frames=40),
        Part(scene="pan", frames=100, noise=2, fade_in=50),
        Part(scene="mandelbrot", frames=60, noise=3),
    )
    return Clip(name="fades", parts=parts, width=width, height=height)


def cuts(width: int, height: int) -> Clip:
    """Hard cuts every 2 s between busy scenes, some noisy."""
    scenes = (
        Part(scene="testsrc2", frames=50, noise=3),
        Part(scene="mandelbrot", frames=50),
        Part(scene="life", frames=50, seed=4),
        Part(scene="spectrum", frames=50),
        Part(scene="pan", frames=50, noise=4),
        Part(scene="life", frames=50, seed=7),
        Part(scene="testsrc2", frames=50),
        Part(scene="mandelbrot", frames=50, noise=4),
        Part(scene="spectrum", frames=50, noise=2),
        Part(scene="testsrc2", frames=50, noise=6),
    )
    return Clip(name="cuts", parts=scenes, width=width, height=height)


def motion(width: int, height: int) -> Clip:
    """A box crossing a still noisy picture, in light and in the dark; a dark scene; a pan.

    Quiet stretches around the box last 2.5 s, longer than the motion event's 2 s gap. A still
    picture needs strong noise to stay live through x264 at crf 23: weaker noise is
    coded away and the stream really is frozen."""
    parts = (
        Part(scene="still", frames=175, noise=8, mover=(63, 112)),
        Part(scene="mandelbrot", frames=50, gain=0.15, noise=3),
        Part(scene="still", frames=175, noise=8, gain=0.2, mover=(63, 112), seed=2),
        Part(scene="pan", frames=50, noise=3),
        Part(scene="still", frames=100, noise=8, freezes=(Freeze(40, 12),), seed=3),
    )
    return Clip(name="motion", parts=parts, width=width, height=height)


def suite(width: int, height: int) -> list[Clip]:
    """Every clip of the suite at ``width`` x ``height``."""
    return [make(width, height) for make in (freezes, fades, cuts, motion)]
