"""Where frames come from and go to: video files (PyAV), image folders, and a raw pipe.

A source yields ``DecodedFrame`` items (RGB ``uint8``, or ``uint16`` for sources deeper than 8
bits, with the source's own timestamp) and, for video files, the audio and subtitle packets
to copy, in the container's order. A sink takes the upscaled frames (same dtype) and the
copied packets. Every file sink writes beside its target and renames when complete: an
interrupted or failed run leaves nothing under the target name.

Colour (``colour``): frames are converted to and from RGB with the source's matrix and range
(where the source leaves them unspecified, what players assume), and the output is tagged with
every field explicitly. Kept: the display matrix (rotation), the sample aspect ratio, HDR10
metadata (through the encoder, ``codecs``), stream and container metadata, dispositions
(default / forced), chapters and attachments where the output container holds them.
Timestamps: every output frame keeps its source frame's timestamp in the source's time base
(variable frame rate stays in sync); copied packets keep theirs. A damaged or truncated source
is decoded as far as it goes; ``VideoFileSource.shortfall`` says what was missing.
"""
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple, Union

import av
import cv2
import numpy as np
from PIL import Image

from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, decode_unchanged, list_images
from rt4ksr_arch.errors import ImageReadError, RT4KSRError
from rt4ksr_arch.media.codecs import EncoderChoice, HdrMetadata, captured_log, even_padding
from rt4ksr_arch.media.colour import Colour, source_colour
from rt4ksr_arch.media.containers import (ATTACHMENT_FORMATS, CHAPTER_FORMATS, COPIED_TYPES, StreamPlan, add_copy,
                                          write_copied)

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.ts', '.mts', '.m2ts', '.flv', '.wmv', '.mpg',
                    '.mpeg', '.y4m', '.ogv')
HVC1_FORMATS = ('mp4', 'mov', 'ipod')  # HEVC tagged hvc1 (parameter sets in the header), as Apple players need
Report = Callable[[str], None]
SideData = av.sidedata.sidedata.Type


def is_video_name(path: Union[str, Path]) -> bool:
    """A file name whose extension (any case) is one of ``VIDEO_EXTENSIONS``."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@lru_cache(maxsize=256)
def is_video_file(path: Union[str, Path]) -> bool:
    """A video by its name (``is_video_name``), an image by its name (``IMAGE_EXTENSIONS``), else by its
    content: FFmpeg decodes at least two frames from its first video stream (.mxf, .vob, .3gp, raw
    .h264, an animated GIF, a name without extension). A file FFmpeg cannot read is not a video."""
    path = Path(path)
    if is_video_name(path):
        return True
    if path.suffix.lower() in IMAGE_EXTENSIONS or not path.is_file():
        return False
    try:
        with captured_log(), av.open(str(path)) as container:
            if not container.streams.video:
                return False
            frames = container.decode(video=0)
            return next(frames, None) is not None and next(frames, None) is not None
    except (av.FFmpegError, OSError, ValueError):
        return False


@dataclass
class DecodedFrame:
    """One source frame: RGB HWC ``uint8`` (8-bit sources) or ``uint16`` (deeper), its pts and arrival time."""

    index: int
    array: np.ndarray
    pts: int
    decoded_at: float  # time.perf_counter() when it left the decoder


@dataclass
class VideoInfo:
    """What a sink needs to know about the source video."""

    width: int
    height: int
    bit_depth: int  # bits per sample of the source pixel format
    time_base: Fraction
    rate: Optional[Fraction]  # average frame rate (encoder rate control, raw-pipe viewers)
    colour: Colour  # what the source's pixels mean (unspecified tags read as players read them)
    frames: Optional[int] = None  # when the container says
    alpha: bool = False  # the source has an alpha channel (the network upscales RGB only)
    rotation: int = 0  # degrees counterclockwise that players turn the frames (display matrix)
    display_matrix: Optional[List[int]] = None  # 9 int32, FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    sample_aspect_ratio: Optional[Fraction] = None
    hdr: Optional[HdrMetadata] = None
    metadata: Dict[str, str] = field(default_factory=dict)  # container tags (title, ...)
    stream_metadata: Dict[str, str] = field(default_factory=dict)  # video stream tags (language, ...)
    disposition: int = 0  # of the video stream
    chapters: List[dict] = field(default_factory=list)
    attachments: List[Tuple[str, str, bytes]] = field(default_factory=list)  # (name, mimetype, data)
    interlaced: bool = False  # the first frame is interlaced (two fields)

    @property
    def peak(self) -> int:
        """The largest sample value of the arrays this source yields (255 or 65535)."""
        return 65535 if self.bit_depth > 8 else 255


def _rgb_format(bit_depth: int) -> str:
    return 'rgb48le' if bit_depth > 8 else 'rgb24'


def _side_data(frame: av.VideoFrame, kind) -> Optional[bytes]:
    data = next((d for d in frame.side_data if d.type == kind), None)
    return bytes(data) if data is not None else None


class VideoFileSource:
    """Frames and the packets to copy of a video file (any container and codec FFmpeg reads).

    The first frame is decoded once up front (a second reader) for what only frames carry:
    colour tags, rotation, HDR10 side data. Raises ``ImageReadError`` when the file cannot be
    opened, has no video stream or no decodable frame.
    """

    def __init__(self, path: Union[str, Path], threads: int = 0) -> None:
        self.path = str(path)
        try:
            with captured_log() as logs:  # a demuxer may find the file cut short while probing it
                self.container = av.open(self.path)
        except (av.FFmpegError, OSError) as err:
            raise ImageReadError(f'cannot open video {path}: {err}') from None
        self.errors: List[str] = []  # what went wrong while reading (damaged packets, an early end)
        self._keep_demuxer_errors(logs)
        if not self.container.streams.video:
            self.container.close()
            raise ImageReadError(f'{path} has no video stream')
        self.video = self.container.streams.video[0]
        self.video.thread_type = 'AUTO'  # frame + slice threads
        self.video.codec_context.thread_count = threads
        self.copied = [s for s in self.container.streams if s.type in COPIED_TYPES]
        self.decoded = 0
        first = self._first_frame()
        fmt = first.format
        rate = self.video.average_rate or self.video.guessed_rate
        self.info = VideoInfo(
            width=first.width, height=first.height, bit_depth=max(c.bits for c in fmt.components),
            time_base=self.video.time_base or Fraction(1, 90000), rate=rate,
            colour=source_colour({name: getattr(first, name) for name in ('color_primaries', 'color_trc',
                                                                          'colorspace', 'color_range')},
                                 fmt.is_rgb, first.width, first.height),
            frames=self.video.frames or None,
            alpha=any(c.is_alpha for c in fmt.components), rotation=int(round(first.rotation or 0)),
            sample_aspect_ratio=self.video.sample_aspect_ratio or None,
            hdr=HdrMetadata.from_side_data(_side_data(first, SideData.MASTERING_DISPLAY_METADATA),
                                           _side_data(first, SideData.CONTENT_LIGHT_LEVEL)),
            metadata=dict(self.container.metadata), stream_metadata=dict(self.video.metadata),
            disposition=int(self.video.disposition), chapters=self.container.chapters(),
            attachments=[(a.name, a.mimetype, a.data) for a in self.container.streams.attachments],
            interlaced=bool(first.interlaced_frame))
        matrix = _side_data(first, SideData.DISPLAYMATRIX)
        if matrix is not None:
            self.info.display_matrix = np.frombuffer(matrix, np.int32).tolist()

    def _first_frame(self) -> av.VideoFrame:
        try:
            with av.open(self.path) as reader:
                frame = next(reader.decode(video=0), None)
                if frame is not None:
                    frame.side_data  # read while the decoder is alive
                    return frame
        except (av.FFmpegError, OSError) as err:
            self.container.close()
            raise ImageReadError(f'{self.path}: cannot decode its first frame: {err}') from None
        self.container.close()
        raise ImageReadError(f'{self.path} has no decodable video frame')

    def items(self) -> Iterator[Union[DecodedFrame, av.Packet]]:
        """Decoded frames and the audio/subtitle packets, in the file's order.

        A packet the decoder rejects is skipped (as players do) and an unreadable rest of the
        file ends the frames; both, and the demuxer's own error messages (``File ended
        prematurely``), are kept in ``errors`` for ``shortfall``.
        """
        with captured_log() as logs:
            yield from self._items()
        self._keep_demuxer_errors(logs)

    def _keep_demuxer_errors(self, logs: List[Tuple[int, str, str]]) -> None:
        demuxer = self.container.format.name
        self.errors += [text.strip() for level, name, text in logs
                        if name == demuxer and level <= av.logging.ERROR and text.strip() and
                        text.strip() not in self.errors]

    def _items(self) -> Iterator[Union[DecodedFrame, av.Packet]]:
        rgb = _rgb_format(self.info.bit_depth)
        step = (1 / (self.info.rate * self.info.time_base)) if self.info.rate else 1
        packets = self.container.demux(self.video, *self.copied)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as err:
                self.errors.append(f'reading stopped after frame {self.decoded}: {err}')
                return
            if packet.stream.type != 'video':
                if packet.dts is not None or packet.pts is not None:  # the demuxer's flush packets carry nothing
                    yield packet
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError as err:
                self.errors.append(f'a damaged packet after frame {self.decoded} was skipped ({err})')
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else int(round(self.decoded * step))
                # one swscale thread (here and in the sink): the network already has the cores, and
                # threaded swscale (FFmpeg 8.1) sporadically wrote a few wrong pixels in rgb48le <->
                # yuv420p10le conversions of small frames in our tests
                array = self.info.colour.to_rgb(frame, rgb).to_ndarray()
                yield DecodedFrame(self.decoded, array, pts, time.perf_counter())
                self.decoded += 1

    def shortfall(self) -> Optional[str]:
        """After ``items``: why the output may lack frames (fewer than the container states, the demuxer's
        or decoder's errors), or None. A container that states no count (Matroska, MPEG-TS) is judged by
        its demuxer's errors alone: a count from the duration is too rough for variable frame rates."""
        expected = self.info.frames
        short = expected is not None and self.decoded < expected
        if not short and not self.errors:
            return None
        if expected is not None:
            counted = f'{self.decoded} of {expected} frames (its container states) were decoded'
        else:
            counted = f'{self.decoded} frames were decoded'
            seconds = self.container.duration / av.time_base if self.container.duration else None
            if seconds and self.info.rate:  # a hint only: the average rate of a variable-rate clip is rough
                counted += f' (its duration, {seconds:.2f} s, holds about {round(seconds * self.info.rate)})'

        damage = ''.join(f'; {error}' for error in self.errors)
        return f'{self.path} is truncated or damaged: {counted}{damage}'

    def close(self) -> None:
        self.container.close()


class FrameFolderSource:
    """A folder of frames (images, in natural name order: ``f_2`` before ``f_10``) as a video at ``rate``
    frames per second.

    8-bit images give ``uint8`` frames, 16-bit images ``uint16``; every frame must have the
    first one's size. Images are RGB (sRGB): the output gets the BT.709 matrix, limited range
    (``colour``). Raises ``ImageReadError`` otherwise, and for a folder that also holds videos.
    """

    def __init__(self, folder: Union[str, Path], rate: Fraction) -> None:
        videos = sorted(p.name for p in Path(folder).iterdir() if is_video_name(p))
        if videos:
            raise ImageReadError(f'{folder} holds video files ({", ".join(videos[:3])}) besides frames; a folder '
                                 'written as one video must hold frames only: move them out, or upscale each video '
                                 'as its own INPUT')
        # frame_2 before frame_10, as a numbered sequence is meant (a text sort put 10 before 2)
        self.paths = sorted(list_images(str(folder)), key=natural_key)
        first = decode_unchanged(Path(self.paths[0]).read_bytes(), self.paths[0])
        height, width = first.shape[:2]
        for path in self.paths[1:]:  # from the headers, before any work (the frames are read later)
            try:
                with Image.open(path) as image:
                    size = image.size
            except (OSError, ValueError):
                continue  # PIL cannot read the header: decoded (and checked) in its turn
            if size != (width, height):
                raise ImageReadError(f'{path} is {size[0]}x{size[1]}; every frame of a sequence must be '
                                     f'{width}x{height} like {self.paths[0]}')
        self.rate = Fraction(rate)
        self.info = VideoInfo(width=width, height=height, bit_depth=16 if first.dtype == np.uint16 else 8,
                              time_base=1 / self.rate, rate=self.rate, colour=source_colour({}, True, width, height),
                              frames=len(self.paths), alpha=first.ndim == 3 and first.shape[2] == 4)
        self.copied: List[av.stream.Stream] = []
        self.decoded = 0

    @staticmethod
    def _read(path: str) -> np.ndarray:
        img = decode_unchanged(Path(path).read_bytes(), path)
        img = img[:, :, :3] if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB

    def items(self) -> Iterator[DecodedFrame]:
        for index, path in enumerate(self.paths):
            img = self._read(path)
            if img.shape[:2] != (self.info.height, self.info.width) or img.itemsize * 8 < self.info.bit_depth:
                raise ImageReadError(f'{path} is {img.shape[1]}x{img.shape[0]} {img.dtype}; every frame of a '
                                     f'sequence must be {self.info.width}x{self.info.height} like {self.paths[0]}')
            yield DecodedFrame(index, img, index, time.perf_counter())
            self.decoded += 1

    def shortfall(self) -> Optional[str]:
        return None  # every image was read, or the run failed naming the one that was not

    def close(self) -> None:
        pass


def natural_key(path: str) -> List[Union[int, str]]:
    """Sort key that orders the digit runs of a name by value (``f_2`` < ``f_10``), the rest case-blind."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', Path(path).name)]


def partial_path(target: Path) -> Path:
    """Where ``target`` is written until complete: a hidden name beside it, same extension (muxers need it)."""
    return target.with_name(f'.{target.stem}.partial{target.suffix}')


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """An HWC frame turned as players show it: ``rotation`` degrees counterclockwise (multiples of 90)."""
    return np.ascontiguousarray(np.rot90(array, (rotation // 90) % 4)) if rotation % 360 else array


@dataclass(frozen=True)
class VideoPlan:
    """How the output video is written: encoder, colour, size, which streams, and what to tell the user."""

    encoder: EncoderChoice
    colour: Colour
    width: int  # of the upscaled frames
    height: int
    streams: Tuple[StreamPlan, ...] = ()
    notes: Tuple[str, ...] = ()

    @property
    def pad(self) -> Tuple[int, int]:
        return even_padding(self.encoder.pix_fmt, self.width, self.height)


class VideoFileSink:
    """Encode upscaled frames into a video file and copy (or convert) the source's audio and subtitle streams.

    ``plan`` says how (``video.plan_video``); ``source`` is the open source container whose
    streams ``plan.streams`` names. ``open`` writes the header (before the first frame, so
    container errors come before any work); a frame size the pixel format cannot hold (odd with
    4:2:0) is padded by one replicated row/column (the plan's notes say so).
    """

    def __init__(self, target: Path, info: VideoInfo, plan: VideoPlan,
                 source: Optional[av.container.InputContainer] = None) -> None:
        self.target, self.partial = Path(target), partial_path(Path(target))
        self.info, self.plan, self.source = info, plan, source
        self.container: Optional[av.container.OutputContainer] = None
        self.stream = None
        self.mapping: Dict[int, tuple] = {}
        self.frames = 0
        self._last_dts: Optional[int] = None

    def open(self) -> None:
        """Create the (partial) file and write its header."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.partial), 'w')
        self.container = container
        plan, info = self.plan, self.info
        stream = container.add_stream(plan.encoder.name, options=dict(plan.encoder.options))
        stream.width, stream.height = plan.width + plan.pad[0], plan.height + plan.pad[1]
        stream.pix_fmt = plan.encoder.pix_fmt
        stream.time_base = stream.codec_context.time_base = info.time_base
        if info.rate:
            stream.codec_context.framerate = info.rate
        for name, value in plan.colour.tags().items():
            setattr(stream.codec_context, name, value)
        if info.sample_aspect_ratio:
            stream.sample_aspect_ratio = info.sample_aspect_ratio
        if plan.encoder.codec == 'hevc' and container.format.name in HVC1_FORMATS:
            stream.codec_tag = 'hvc1'
        if info.display_matrix:
            stream.set_display_matrix(info.display_matrix)
        stream.disposition = av.stream.Disposition(info.disposition)
        stream.metadata.update({k: v for k, v in info.stream_metadata.items() if k.lower() != 'encoder'})
        self.stream = stream
        for item in plan.streams:
            self.mapping[item.index] = add_copy(container, self.source.streams[item.index], item.convert_to)
        if container.format.name in ATTACHMENT_FORMATS:
            for name, mimetype, data in info.attachments:
                container.add_attachment(name, mimetype, data)
        if info.chapters and container.format.name in CHAPTER_FORMATS:
            container.set_chapters(info.chapters)
        container.metadata.update({k: v for k, v in info.metadata.items() if k.lower() != 'encoder'})
        container.start_encoding()

    def write_packet(self, packet: av.Packet) -> None:
        """Copy (or convert) one audio/subtitle packet, its timestamps unchanged."""
        if packet.stream.index in self.mapping:
            write_copied(self.container, packet, *self.mapping[packet.stream.index])

    def _frame(self, array: np.ndarray, pts: int) -> av.VideoFrame:
        pad = self.plan.pad
        if any(pad):
            array = np.pad(array, ((0, pad[1]), (0, pad[0]), (0, 0)), mode='edge')
        frame = av.VideoFrame.from_ndarray(array, format='rgb48le' if array.dtype == np.uint16 else 'rgb24')
        frame = self.plan.colour.from_rgb(frame, self.plan.encoder.pix_fmt)
        frame.pts, frame.time_base = pts, self.info.time_base
        return frame

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        """Encode one RGB HWC frame (``uint8``/``uint16``) at ``pts`` (source time base)."""
        if self.container is None:
            self.open()
        self._mux(self.stream.encode(self._frame(array, pts)))
        self.frames += 1

    def _mux(self, packets: List[av.Packet]) -> None:
        """Mux encoded packets, repairing a decode timestamp that cannot be: libx265 in PyAV's FFmpeg build
        now and then hands out an uninitialised dts (e.g. -4.6e18), which MP4 refuses ("pts/dts pair
        unsupported"). A dts after its pts or more than a minute before it is replaced by the next one
        that keeps the order (the previous dts + 1, at most the pts)."""
        limit = 60 / self.info.time_base
        for packet in packets:
            if packet.pts is not None and (packet.dts is None or packet.dts > packet.pts or
                                           packet.pts - packet.dts > limit):
                packet.dts = packet.pts if self._last_dts is None else min(packet.pts, self._last_dts + 1)
            if packet.dts is not None:
                self._last_dts = packet.dts
            self.container.mux(packet)

    def close(self, complete: bool) -> None:
        """Flush and rename onto the target when ``complete``; otherwise remove the partial file.
        Closing again does nothing (the partial file is gone, renamed or removed)."""
        try:
            if self.container is not None:
                if complete:
                    self._mux(self.stream.encode(None))
                container, self.container = self.container, None
                container.close()
            if complete:
                if not self.frames:
                    raise ImageReadError(f'no frames were decoded; {self.target} was not written')
                os.replace(self.partial, self.target)
        finally:
            if self.partial.exists():
                self.partial.unlink()


class FrameFolderSink:
    """Upscaled frames as PNG files ``<prefix>_<index:06d>.png`` (16-bit for deep sources) in a folder.

    Frames are turned upright by ``rotation`` (as players show the video). Written into a hidden
    partial folder beside the target and renamed when complete.
    """

    def __init__(self, target: Path, prefix: str = 'frame', rotation: int = 0) -> None:
        self.target, self.partial = Path(target), Path(target).with_name(f'.{Path(target).name}.partial')
        self.prefix, self.rotation = prefix, rotation
        self.frames = 0

    def write_packet(self, packet: av.Packet) -> None:
        pass  # frames only: audio and subtitles have no place in a folder of images

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        if self.frames == 0:
            self.partial.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode('.png', np.ascontiguousarray(upright(array, self.rotation)[:, :, ::-1]))
        if not ok:
            raise ImageReadError(f'cannot encode frame {self.frames} as PNG')
        (self.partial / f'{self.prefix}_{self.frames:06d}.png').write_bytes(encoded.tobytes())
        self.frames += 1

    def close(self, complete: bool) -> None:
        if complete and self.frames:
            if self.target.exists():
                shutil.rmtree(self.target)
            os.replace(self.partial, self.target)
        elif self.partial.exists():
            shutil.rmtree(self.partial)


class RawPipeSink:
    """Frames as raw RGB (``rgb24``, or ``rgb48le`` for deep sources) on a binary stream, for live viewers.

    Frames are turned upright by ``rotation`` (as players show the video).
    """

    def __init__(self, stream: Optional[BinaryIO] = None, rotation: int = 0) -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.rotation = rotation
        self.frames = 0

    def write_packet(self, packet: av.Packet) -> None:
        pass  # raw video carries no audio

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        """Raises ``ReaderClosed`` when the reader has closed the pipe (a viewer quit, ``head``)."""
        array = upright(array, self.rotation)
        try:
            self.stream.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder('<'), copy=False).tobytes())
        except BrokenPipeError:
            self._detach()
            raise ReaderClosed(f'the reader of the pipe closed it after {self.frames} frames') from None
        self.frames += 1

    def _detach(self) -> None:
        """Point the stream's descriptor at the null device: nothing flushed later (at exit) fails again."""
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # a stream without a descriptor (a test's BytesIO)
            pass

    def close(self, complete: bool) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._detach()


class ReaderClosed(RT4KSRError):
    """The reader of the raw pipe closed it: a normal end for a live viewer, not a failure."""


def viewer_command(width: int, height: int, bit_depth: int, rate: Optional[Fraction]) -> str:
    """The command that shows ``RawPipeSink``'s output: ``rt4ksr upscale IN - ... | <this>``."""
    fps = f'{float(rate):g}' if rate else '25'
    return (f'ffplay -f rawvideo -pixel_format {_rgb_format(bit_depth)} -video_size {width}x{height} -framerate '
            f'{fps} -   (or: mpv --demuxer=rawvideo --demuxer-rawvideo-w={width} --demuxer-rawvideo-h={height} '
            f'--demuxer-rawvideo-mp-format={_rgb_format(bit_depth)} --demuxer-rawvideo-fps={fps} -)')
