"""Upscale a video (or a folder of frames) into a video, a folder of frames, or a raw pipe.

One call, ``upscale_video``: it opens the source, chooses the encoder (``codecs``), and runs
the overlapped pipeline (``pipeline``) through the one inference runner (``Upscaler``). 8-bit
sources are processed as 8-bit RGB; deeper sources (10-bit, HDR10) as 16-bit RGB and written
10-bit when the encoder has a 10-bit format.
"""
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import torch

from rt4ksr_arch.errors import OptionError
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.media.codecs import choose_encoder
from rt4ksr_arch.media.pipeline import DeviceTransfer, PipelineStats, run_pipeline
from rt4ksr_arch.media.streams import (DecodedFrame, FrameFolderSink, FrameFolderSource, RawPipeSink, VideoFileSink,
                                       VideoFileSource, VideoInfo, viewer_command)

PIPE = '-'


@dataclass(frozen=True)
class VideoOptions:
    """How a video is written. ``codec``: a family (h264, h265, av1, ffv1) or an FFmpeg encoder name."""

    codec: str = 'h264'
    crf: Optional[int] = None  # encoder default per codec (codecs.DEFAULT_CRF)
    preset: Optional[str] = None  # encoder default per codec (codecs.DEFAULT_PRESET)
    pix_fmt: Optional[str] = None  # default: yuv420p (8-bit sources) / yuv420p10le (deeper)
    batch: int = 1  # frames per forward pass
    frame_rate: Fraction = Fraction(25)  # of a folder of frames (a video keeps its own timestamps)
    target_fps: Optional[float] = None  # count frames that miss a live source's deadline

    def __post_init__(self) -> None:
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise OptionError('crf', f'must be in 0..63, got {self.crf}')
        if self.batch < 1:
            raise OptionError('batch', f'must be >= 1, got {self.batch}')
        if Fraction(self.frame_rate) <= 0:
            raise OptionError('frame_rate', f'must be positive, got {self.frame_rate}')
        if self.target_fps is not None and self.target_fps <= 0:
            raise OptionError('target_fps', f'must be positive, got {self.target_fps}')


def open_source(source: Union[str, Path], frame_rate: Fraction = Fraction(25)):
    """A ``VideoFileSource`` for a file, a ``FrameFolderSource`` for a folder of images."""
    return FrameFolderSource(source, frame_rate) if Path(source).is_dir() else VideoFileSource(source)


def upscale_video(upscaler: Upscaler, source: Union[str, Path], target: Union[str, Path],
                  options: VideoOptions = VideoOptions(), frames: bool = False,
                  report: Callable[[str], None] = print, progress: bool = True) -> Tuple[PipelineStats, VideoInfo]:
    """Upscale every frame of ``source`` (a video file or a folder of frames) into ``target``.

    ``target``: a video file (encoded with ``options``; audio and subtitle streams copied), a
    folder of PNG frames when ``frames``, or ``'-'`` for raw RGB on stdout (the command to view
    it is reported). Files are written beside the target and renamed when complete. Returns
    the run's ``PipelineStats`` and the source's ``VideoInfo``. Raises ``ImageReadError`` for
    an unreadable source and ``OptionError`` for an unusable codec / container.
    """
    src = open_source(source, options.frame_rate)
    info = src.info
    device = upscaler.network.device
    try:
        if str(target) == PIPE:
            sink = RawPipeSink()
            report(f'raw {info.width * upscaler.scale}x{info.height * upscaler.scale} video on stdout; view it with: '
                   + viewer_command(info.width * upscaler.scale, info.height * upscaler.scale, info.bit_depth,
                                    info.rate))
        elif frames:
            sink = FrameFolderSink(Path(target))
        else:
            encoder = choose_encoder(options.codec, info.bit_depth, device.type == 'cuda', options.crf, options.preset,
                                     options.pix_fmt)
            for note in encoder.notes:
                report(f'note: {note}')
            report(f'encoder: {encoder.name} {encoder.pix_fmt} '
                   + ' '.join(f'{k}={v}' for k, v in encoder.options.items()))
            sink = VideoFileSink(Path(target), info, src.copied, encoder, report)
        stats = run_pipeline(src.items(), upscaler, sink, device, info.peak, options.batch, info.frames,
                             options.target_fps, progress, desc=Path(source).name)
    finally:
        src.close()
    return stats, info


def network_only_fps(upscaler: Upscaler, source: Union[str, Path], batch: int = 1,
                     frame_rate: Fraction = Fraction(25)) -> Tuple[float, int]:
    """(frames per second, frames) of the network alone on ``source``'s decoded frames (decoded first, untimed).

    The same frames, batches and conversions to [0, 1] the pipeline feeds; the baseline of
    ``benchmarks/video_pipeline.py``.
    """
    src = open_source(source, frame_rate)
    try:
        decoded = [item.array for item in src.items() if isinstance(item, DecodedFrame)]
        peak = src.info.peak
    finally:
        src.close()
    device = upscaler.network.device
    transfer = DeviceTransfer(device)
    start = time.perf_counter()
    for first in range(0, len(decoded), batch):
        upscaler(transfer.to_device(decoded[first:first + batch], peak))
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    return len(decoded) / (time.perf_counter() - start), len(decoded)
