"""Upscale a video (or a folder of frames) into a video, a folder of frames, or a raw pipe.

One call, ``upscale_video``: it opens the source, plans the output (``plan_video``: the
encoder for the container and bit depth, what becomes of every other stream, colour), writes
the output's header, and runs the overlapped pipeline (``pipeline``) through the one inference
runner (``Upscaler``). 8-bit sources are processed as 8-bit RGB; deeper sources (10-bit, HDR10)
as 16-bit RGB and written 10-bit when the encoder has a 10-bit format. ``plan_video`` raises
before any frame is decoded, so the CLI calls it before loading the network too.
"""
import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import av
import torch

from rt4ksr_arch.errors import ImageReadError, OptionError
from rt4ksr_arch.inference import Upscaler
from rt4ksr_arch.media.codecs import DEFAULT_ORDER, FAMILIES, EncoderChoice, choose_encoder, even_padding
from rt4ksr_arch.media.colour import RGB_MATRIX, output_colour
from rt4ksr_arch.media.containers import ATTACHMENT_FORMATS, CHAPTER_FORMATS, COPIED_TYPES, Muxer, plan_streams
from rt4ksr_arch.media.pipeline import DeviceTransfer, PipelineStats, run_pipeline
from rt4ksr_arch.media.streams import (DecodedFrame, FrameFolderSink, FrameFolderSource, RawPipeSink, VideoFileSink,
                                       VideoFileSource, VideoInfo, VideoPlan, viewer_command)

PIPE = '-'
DEFAULT_FRAME_RATE = Fraction(25)  # of a folder of frames
MATRIX_NAMES = {0: 'RGB', 1: 'BT.709', 5: 'BT.601', 6: 'BT.601', 9: 'BT.2020'}
Source = Union[VideoFileSource, FrameFolderSource]


@dataclass(frozen=True)
class VideoOptions:
    """How a video is written. ``codec``: a family (h264, h265, av1, vp9, ffv1, ...) or an FFmpeg encoder name;
    None chooses for the output container and the source's bit depth (``codecs.DEFAULT_ORDER``)."""

    codec: Optional[str] = None
    crf: Optional[int] = None  # encoder default per codec (codecs.DEFAULT_CRF); 0: the encoder's lossless mode
    preset: Optional[str] = None  # encoder default per codec (codecs.DEFAULT_PRESET)
    pix_fmt: Optional[str] = None  # default: yuv420p (8-bit sources) / yuv420p10le (deeper); RGB for FFV1
    encoder_options: Dict[str, str] = field(default_factory=dict)  # the user's own FFmpeg encoder options
    drop: Tuple[str, ...] = ()  # stream types (audio, subtitle) or indices left out of the output
    batch: int = 1  # frames per forward pass
    frame_rate: Optional[Fraction] = None  # of a folder of frames (default 25); a video keeps its own timestamps
    target_fps: Optional[float] = None  # count frames that miss a live source's deadline

    def __post_init__(self) -> None:
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise OptionError('crf', f'must be in 0..63, got {self.crf}')
        if self.batch < 1:
            raise OptionError('batch', f'must be >= 1, got {self.batch}')
        if self.frame_rate is not None and Fraction(self.frame_rate) <= 0:
            raise OptionError('frame_rate', f'must be positive, got {self.frame_rate}')
        if self.target_fps is not None and self.target_fps <= 0:
            raise OptionError('target_fps', f'must be positive, got {self.target_fps}')
        wrong = [d for d in self.drop if d not in COPIED_TYPES and not d.isdigit()]
        if wrong:
            raise OptionError('drop', f'takes stream types ({", ".join(COPIED_TYPES)}) or stream indices, got '
                              f'{", ".join(wrong)}')

    def encoder_flags(self) -> List[str]:
        """The encoder settings given (field names), for refusing them where nothing is encoded."""
        return [name for name in ('codec', 'crf', 'preset', 'pix_fmt', 'encoder_options') if getattr(self, name)]


SAR_IN_STREAM = ('h264', 'hevc')  # codecs that carry the sample aspect ratio in their bitstream (VUI)


def open_source(source: Union[str, Path], frame_rate: Optional[Fraction] = None) -> Source:
    """A ``VideoFileSource`` for a file, a ``FrameFolderSource`` for a folder of images.

    Raises ``OptionError('frame_rate', ...)`` for a frame rate given with a video file (it keeps its own).
    """
    if Path(source).is_dir():
        return FrameFolderSource(source, frame_rate or DEFAULT_FRAME_RATE)
    if frame_rate is not None:
        raise OptionError('frame_rate', f'is for a folder of frames; {Path(source).name} keeps its own timestamps')
    return VideoFileSource(source)


def _default_encoder(muxer: Muxer, info: VideoInfo, options: VideoOptions, cuda: bool, size: Tuple[int, int]
                     ) -> Tuple[EncoderChoice, List[str]]:
    """The first family of ``DEFAULT_ORDER`` that ``muxer`` carries and that opens at ``size``; a note when it is
    not the first."""
    order = DEFAULT_ORDER[10 if info.bit_depth > 8 else 8]
    skipped = []
    for family in order:
        software = FAMILIES[family][0]
        if not muxer.carries(av.codec.Codec(software, 'w').canonical_name):
            skipped.append(f'{muxer.suffix} does not hold {family.upper()}')
            continue
        try:
            encoder = choose_encoder(family, info.bit_depth, cuda, options.crf, options.preset, options.pix_fmt,
                                     info.hdr, options.encoder_options, size)
        except OptionError as err:
            if err.field != 'codec':  # the user's CRF / preset / options: theirs to fix
                raise
            skipped.append(err.problem)
            continue
        refused = muxer.writes(encoder, [], {})  # some muxers (y4m, ogg) take a codec they then cannot write
        if refused:
            skipped.append(f'{muxer.suffix} cannot hold {encoder.name} {encoder.pix_fmt}')
            continue
        notes = [f'{skipped[0]}; writing {family.upper()} ({encoder.name}); --codec chooses'] if skipped else []
        return encoder, notes
    raise OptionError('OUTPUT', f'{muxer.suffix} holds none of {", ".join(order)} that opens here '
                      f'({"; ".join(skipped)}); name the output .mkv or .mp4')


def _carried_families(muxer: Muxer) -> List[str]:
    return [f for f, (software, _) in FAMILIES.items() if f != 'hevc' and
            muxer.carries(av.codec.Codec(software, 'w').canonical_name)]


def plan_video(source: Source, target: Path, options: VideoOptions = VideoOptions(), scale: int = 1,
               cuda: bool = False) -> VideoPlan:
    """How ``source`` upscaled ``scale`` times is written to ``target`` (a video file name).

    Chooses the encoder (``options.codec`` or the container's default for the bit depth), checks
    that the container carries it and every kept stream (converting text subtitles where that
    works), and decides colour and padding. Raises ``OptionError`` naming what cannot be
    written and the way on; nothing is written.
    """
    info = source.info
    width, height = info.width * scale, info.height * scale
    muxer = Muxer(Path(target).suffix)
    try:
        notes: List[str] = []
        if options.codec:
            encoder = choose_encoder(options.codec, info.bit_depth, cuda, options.crf, options.preset,
                                     options.pix_fmt, info.hdr, options.encoder_options, (width, height))
            if not muxer.carries(encoder.codec):
                takes = _carried_families(muxer)
                raise OptionError('codec', f'{encoder.name} ({encoder.codec}) cannot be stored in {muxer.suffix}; '
                                  + (f'{muxer.suffix} takes {", ".join(takes)} (--codec), ' if takes else '')
                                  + 'or name the output .mkv')
        else:
            encoder, notes = _default_encoder(muxer, info, options, cuda, (width, height))
        refused = muxer.writes(encoder, [], {})
        if refused:
            raise OptionError('OUTPUT', f'{muxer.suffix} cannot hold {encoder.name} {encoder.pix_fmt}: {refused}; '
                              'name the output .mkv')
        streams: List = []
        if isinstance(source, VideoFileSource):
            streams, stream_notes = plan_streams(source.path, muxer, encoder, options.drop)
            notes += stream_notes
        notes += list(encoder.notes)
        notes += _metadata_notes(info, muxer)
        pad = even_padding(encoder.pix_fmt, width, height)
        if any(pad):
            notes.append(f'{width}x{height} is padded to {width + pad[0]}x{height + pad[1]} for '
                         f'{encoder.pix_fmt} (4:2:0 needs even sizes); --pix-fmt yuv444p or --codec ffv1 keeps the '
                         'exact size')
        sar = info.sample_aspect_ratio
        if sar and sar != 1 and encoder.codec not in SAR_IN_STREAM:
            notes.append(f'{encoder.name} does not store the source\'s sample aspect ratio {sar.numerator}:'
                         f'{sar.denominator} (H.264 and H.265 do, in the stream; PyAV cannot set the container\'s): '
                         'players may show the pictures stretched')
        if info.alpha:
            notes.append("the source's alpha channel is not in the output (the network upscales colour only; "
                         'upscale the frames as images to keep alpha)')
        if any(c.is_alpha for c in av.VideoFormat(encoder.pix_fmt).components):
            notes.append(f'{encoder.pix_fmt} has an alpha channel: written opaque (255)')
        return VideoPlan(encoder, output_colour(info.colour, encoder.rgb), width, height,
                         tuple(streams), tuple(notes))
    finally:
        muxer.close()


def _metadata_notes(info: VideoInfo, muxer: Muxer) -> List[str]:
    notes = []
    if info.attachments and muxer.name not in ATTACHMENT_FORMATS:
        notes.append(f'{len(info.attachments)} attachment(s) ({", ".join(a[0] for a in info.attachments)}) not kept: '
                     'only .mkv holds attachments')
    if info.chapters and muxer.name not in CHAPTER_FORMATS:
        notes.append(f'{len(info.chapters)} chapter(s) not kept: {muxer.suffix} holds none (.mkv and .mp4 do)')
    return notes


def describe_plan(plan: VideoPlan) -> str:
    """One line: encoder, pixel format, options and the colour tags written."""
    colour = plan.colour
    matrix = MATRIX_NAMES.get(colour.matrix, str(colour.matrix))
    rng = 'full' if colour.range == 2 else 'limited'
    what = 'RGB' if colour.matrix == RGB_MATRIX else f'{matrix} matrix, {rng} range'
    return f'encoder: {plan.encoder.describe()}; colour {what} (tagged)'


def refuse_encoder_settings(options: VideoOptions, frames: bool, raw: bool) -> None:
    """Raise ``OptionError`` naming an encoder setting given for output that is not encoded (frames, raw pipe)."""
    if (frames or raw) and options.encoder_flags():
        what = 'raw frames on stdout' if raw else 'a folder of PNG frames'
        raise OptionError(options.encoder_flags()[0], f'does not apply to {what}; nothing is encoded')


def upscale_video(upscaler: Upscaler, source: Union[str, Path], target: Union[str, Path],
                  options: VideoOptions = VideoOptions(), frames: bool = False,
                  report: Callable[[str], None] = print, progress: bool = True) -> Tuple[PipelineStats, VideoInfo]:
    """Upscale every frame of ``source`` (a video file or a folder of frames) into ``target``.

    ``target``: a video file (``plan_video``; audio and subtitle streams copied), a folder of
    PNG frames when ``frames``, or ``'-'`` for raw RGB on stdout (the command to view it is
    reported); frames and the pipe are turned upright by the source's rotation. Files are written
    beside the target and renamed when complete. Returns the run's ``PipelineStats`` (its
    ``shortfall`` says when a damaged or truncated source gave fewer frames than it should) and
    the source's ``VideoInfo``. Raises ``ImageReadError`` for an unreadable source or a failed
    write and ``OptionError`` for an unusable codec / container / option.
    """
    raw = str(target) == PIPE
    refuse_encoder_settings(options, frames, raw)
    src = open_source(source, options.frame_rate)
    info = src.info
    if info.interlaced:
        report('note: the source is interlaced: its frames are upscaled as progressive pictures, which magnifies '
               'combing; deinterlace first (e.g. ffmpeg -i IN -vf bwdif -c:a copy OUT)')
    device = upscaler.network.device
    scale = upscaler.scale
    try:
        if raw or frames:
            if info.rotation % 360:
                report(f'note: frames turned upright ({info.rotation} degrees, as players show this video)')
            if info.alpha:
                report("note: the source's alpha channel is not kept (the network upscales colour only)")
            if raw:
                upright_w, upright_h = (info.height, info.width) if info.rotation % 180 else (info.width, info.height)
                sink = RawPipeSink(rotation=info.rotation)
                report(f'raw {upright_w * scale}x{upright_h * scale} video on stdout; view it with: '
                       + viewer_command(upright_w * scale, upright_h * scale, info.bit_depth, info.rate))
            else:
                sink = FrameFolderSink(Path(target), rotation=info.rotation)
        else:
            plan = plan_video(src, Path(target), options, scale, device.type == 'cuda')
            for note in plan.notes:
                report(f'note: {note}')
            report(describe_plan(plan))
            if isinstance(src, VideoFileSource):
                src.copied = [src.container.streams[p.index] for p in plan.streams]
            sink = VideoFileSink(Path(target), info, plan, getattr(src, 'container', None))
        # one try from the partial file's creation: an interrupt (Ctrl-C, SIGTERM) can land between any two
        # statements, and whatever is left half-written is removed (closing a closed sink does nothing)
        try:
            if isinstance(sink, VideoFileSink):
                try:
                    sink.open()
                except (av.FFmpegError, ValueError) as err:
                    raise OptionError('OUTPUT', f'FFmpeg cannot write {target}: {err}') from None
            stats = run_pipeline(src.items(), upscaler, sink, device, info.peak, options.batch, info.frames,
                                 options.target_fps, progress, desc=Path(source).name)
        except av.FFmpegError as err:
            raise ImageReadError(f'writing {target} failed: {err}') from None
        finally:
            sink.close(False)
        stats.shortfall = src.shortfall()
    finally:
        src.close()
    return stats, info


def media_ms_per_frame(source: Union[str, Path], target: Union[str, Path], options: VideoOptions = VideoOptions(),
                       scale: int = 1, cuda: bool = False, frames: int = 4) -> float:
    """Milliseconds per frame to decode ``source``'s first ``frames`` frames and encode them at ``scale`` x the
    size as ``target`` would be written (a video name: its planned encoder; ``'-'`` or a folder: decode
    only), without the network (frames are enlarged by repetition). Real-time mode's budget holds it.
    """
    src = open_source(source, options.frame_rate)
    folder = Path(tempfile.mkdtemp(prefix='rt4ksr_media_'))
    try:
        sink = None
        if str(target) != PIPE and Path(target).suffix:
            probe = folder / f'probe{Path(target).suffix}'
            plan = dataclasses.replace(plan_video(src, probe, options, scale, cuda), streams=())
            sink = VideoFileSink(probe, src.info, plan)
            sink.open()
        count, start = 0, time.perf_counter()
        for item in src.items():
            if isinstance(item, DecodedFrame):
                if sink is not None:
                    sink.write_frame(item.array.repeat(scale, 0).repeat(scale, 1), item.pts)
                count += 1
                if count == frames:
                    break
        if sink is not None:
            sink.close(True)
        return (time.perf_counter() - start) * 1000 / max(count, 1)
    finally:
        src.close()
        shutil.rmtree(folder, ignore_errors=True)


def network_only_fps(upscaler: Upscaler, source: Union[str, Path], batch: int = 1,
                     frame_rate: Optional[Fraction] = None) -> Tuple[float, int]:
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
