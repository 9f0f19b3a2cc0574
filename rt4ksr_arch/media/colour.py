"""Colour description: what the source's pixels mean, and how the output says the same explicitly.

A tag the source leaves unspecified is read as players read it (ITU-R BT.709 matrix for HD and
larger pictures, BT.601 / SMPTE 170M for smaller ones; limited range for YUV; BT.709 primaries
and transfer for RGB pictures, whose sRGB primaries are BT.709's), and the output carries every
tag explicitly, so a player shows the upscaled video as it showed the source. YUV sources keep
their own matrix and range; RGB sources (frame folders, PNG or RGB codecs in a container) are
written with the BT.709 matrix, limited range. RGB encoders (FFV1 ``bgr0``,
``libx264rgb``) store no matrix: they are tagged RGB, full range.
"""
from dataclasses import dataclass
from typing import Dict, Optional

import av

RGB_MATRIX, BT709, UNSPECIFIED, BT470BG, SMPTE170M = 0, 1, 2, 5, 6  # AVColorSpace / AVColorPrimaries / AVColorTrc
UNSPECIFIED_RANGE, MPEG_RANGE, JPEG_RANGE = 0, 1, 2  # AVColorRange
# AVColorSpace -> swscale's SWS_CS_* (the matrix reformat() converts with)
SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
HD = (1280, 720)  # from this width or height on, players assume BT.709 (the HD standard)
FIELDS = ('color_primaries', 'color_trc', 'colorspace', 'color_range')


def is_hd(width: int, height: int) -> bool:
    return width >= HD[0] or height >= HD[1]


@dataclass(frozen=True)
class Colour:
    """FFmpeg enum values of primaries, transfer, matrix (``RGB_MATRIX`` for RGB pixels) and range."""

    primaries: int
    transfer: int
    matrix: int
    range: int

    def tags(self) -> Dict[str, int]:
        """Codec-context / frame attribute -> value, as PyAV names them."""
        return dict(zip(FIELDS, (self.primaries, self.transfer, self.matrix, self.range)))

    def to_rgb(self, frame: av.VideoFrame, rgb_format: str) -> av.VideoFrame:
        """``frame`` (pixels described by this colour) as ``rgb_format``; one swscale thread (see streams)."""
        if self.matrix == RGB_MATRIX:
            return frame.reformat(format=rgb_format, threads=1)
        return frame.reformat(format=rgb_format, src_colorspace=SWS_MATRIX.get(self.matrix),
                              src_color_range=self.range, threads=1)

    def from_rgb(self, frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
        """An RGB ``frame`` converted to ``pix_fmt`` with this colour's matrix and range, and tagged with it."""
        if self.matrix == RGB_MATRIX:
            out = frame.reformat(format=pix_fmt, threads=1)
        else:
            out = frame.reformat(format=pix_fmt, dst_colorspace=SWS_MATRIX.get(self.matrix),
                                 dst_color_range=self.range, threads=1)
        for name, value in self.tags().items():
            setattr(out, name, value)
        return out


def source_colour(tags: Dict[str, Optional[int]], rgb: bool, width: int, height: int) -> Colour:
    """The colour of a source from its tags (``FIELDS`` -> value; 0/2 unspecified) and its pixels' kind and size."""
    def tag(name: str, unspecified: int) -> Optional[int]:
        value = tags.get(name)
        return None if value in (None, unspecified) else int(value)

    hd = is_hd(width, height)
    primaries = tag('color_primaries', UNSPECIFIED) or (BT709 if hd or rgb else SMPTE170M)
    transfer = tag('color_trc', UNSPECIFIED) or (BT709 if hd or rgb else SMPTE170M)
    if rgb:
        return Colour(primaries, transfer, RGB_MATRIX, JPEG_RANGE)
    matrix = tag('colorspace', UNSPECIFIED)
    matrix = BT709 if matrix is None and hd else SMPTE170M if matrix in (None, RGB_MATRIX) else matrix
    return Colour(primaries, transfer, matrix, tag('color_range', UNSPECIFIED_RANGE) or MPEG_RANGE)


def output_colour(source: Colour, rgb_output: bool) -> Colour:
    """The output's colour for ``source``: RGB, full range for RGB pixel formats; else the source's matrix and
    range, or for RGB sources the BT.709 matrix, limited range (the HD / 4K standard; tagged, so players at
    any size convert back with it)."""
    if rgb_output:
        return Colour(source.primaries, source.transfer, RGB_MATRIX, JPEG_RANGE)
    if source.matrix == RGB_MATRIX:
        return Colour(source.primaries, source.transfer, BT709, MPEG_RANGE)
    return source
