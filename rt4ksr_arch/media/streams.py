"""Where frames come from and go to: video files (PyAV), image folders, and a raw pipe.

A source yields ``DecodedFrame`` items (RGB ``uint8``, or ``uint16`` for sources deeper than 8
bits, with the source's own timestamp) and, for video files, the audio and subtitle packets
to copy, in the container's order. A sink takes the upscaled frames (same dtype) and the
copied packets. Every file sink writes beside its target and renames when complete: an
interrupted or failed run leaves nothing under the target name.

Colour: frames are converted to and from RGB with the source's matrix and range (swscale), and
the output is tagged with the source's primaries, transfer, matrix and range; the display
matrix (rotation) and stream / container metadata are copied. Timestamps: every output frame
keeps its source frame's timestamp in the source's time base (variable frame rate stays in
sync); copied packets keep theirs.
"""
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple, Union

import av
import cv2
import numpy as np

from rt4ksr_arch.data.image_io import decode_unchanged, list_images
from rt4ksr_arch.errors import ImageReadError, OptionError
from rt4ksr_arch.media.codecs import EncoderChoice

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.ts', '.mts', '.m2ts', '.flv', '.wmv', '.mpg',
                    '.mpeg', '.y4m', '.ogv')
COPIED_TYPES = ('audio', 'subtitle')
COLOR_FIELDS = ('color_primaries', 'color_trc', 'colorspace', 'color_range')
UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED
MPEG_RANGE, UNSPECIFIED_RANGE = 1, 0
Report = Callable[[str], None]


def is_video_name(path: Union[str, Path]) -> bool:
    """A file name whose extension (any case) is one of ``VIDEO_EXTENSIONS``."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


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
    frames: Optional[int] = None  # when the container says
    color: Dict[str, int] = field(default_factory=dict)  # COLOR_FIELDS -> FFmpeg enum value
    display_matrix: Optional[List[int]] = None  # 9 int32, FFmpeg's AV_PKT_DATA_DISPLAYMATRIX layout
    metadata: Dict[str, str] = field(default_factory=dict)  # container tags (title, ...)
    stream_metadata: Dict[str, str] = field(default_factory=dict)  # video stream tags (language, ...)

    @property
    def peak(self) -> int:
        """The largest sample value of the arrays this source yields (255 or 65535)."""
        return 65535 if self.bit_depth > 8 else 255


def _rgb_format(bit_depth: int) -> str:
    return 'rgb48le' if bit_depth > 8 else 'rgb24'


class VideoFileSource:
    """Frames and the packets to copy of a video file (any container and codec FFmpeg reads).

    Raises ``ImageReadError`` when the file cannot be opened or has no video stream.
    """

    def __init__(self, path: Union[str, Path], threads: int = 0) -> None:
        self.path = str(path)
        try:
            self.container = av.open(self.path)
        except (av.FFmpegError, OSError) as err:
            raise ImageReadError(f'cannot open video {path}: {err}') from None
        if not self.container.streams.video:
            self.container.close()
            raise ImageReadError(f'{path} has no video stream')
        self.video = self.container.streams.video[0]
        self.video.thread_type = 'AUTO'  # frame + slice threads
        self.video.codec_context.thread_count = threads
        self.copied = [s for s in self.container.streams if s.type in COPIED_TYPES]
        context = self.video.codec_context
        fmt = context.format or av.VideoFormat(context.pix_fmt or 'yuv420p')
        self.info = VideoInfo(
            width=context.width, height=context.height, bit_depth=max(c.bits for c in fmt.components),
            time_base=self.video.time_base or Fraction(1, 90000),
            rate=self.video.average_rate or self.video.guessed_rate, frames=self.video.frames or None,
            color={name: int(getattr(context, name) or 0) for name in COLOR_FIELDS},
            metadata=dict(self.container.metadata), stream_metadata=dict(self.video.metadata))

    def items(self) -> Iterator[Union[DecodedFrame, av.Packet]]:
        """Decoded frames and the audio/subtitle packets, in the file's order.

        The first frame fills ``info.display_matrix`` (FFmpeg attaches it to frames).
        """
        rgb = _rgb_format(self.info.bit_depth)
        index = 0
        step = (1 / (self.info.rate * self.info.time_base)) if self.info.rate else 1
        try:
            for packet in self.container.demux(self.video, *self.copied):
                if packet.stream.type != 'video':
                    if packet.dts is not None or packet.pts is not None:  # the demuxer's flush packets carry nothing
                        yield packet
                    continue
                for frame in packet.decode():
                    if index == 0:
                        matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
                        if matrix is not None:
                            self.info.display_matrix = np.frombuffer(bytes(matrix), np.int32).tolist()
                    pts = frame.pts if frame.pts is not None else int(round(index * step))
                    # one swscale thread (here and in the sink): the network already has the cores, and
                    # threaded swscale (FFmpeg 8.1) sporadically wrote a few wrong pixels in rgb48le <->
                    # yuv420p10le conversions of small frames in our tests
                    yield DecodedFrame(index, frame.to_ndarray(format=rgb, threads=1), pts, time.perf_counter())
                    index += 1
        except av.FFmpegError as err:
            raise ImageReadError(f'{self.path}: decoding failed at frame {index}: {err}') from None

    def close(self) -> None:
        self.container.close()


class FrameFolderSource:
    """A folder of frames (images, sorted by name) as a video at ``rate`` frames per second.

    8-bit images give ``uint8`` frames, 16-bit images ``uint16``; every frame must have the
    first one's size. Raises ``ImageReadError`` otherwise.
    """

    def __init__(self, folder: Union[str, Path], rate: Fraction) -> None:
        self.paths = list_images(str(folder))
        first = self._read(self.paths[0])
        self.rate = Fraction(rate)
        self.info = VideoInfo(width=first.shape[1], height=first.shape[0],
                              bit_depth=16 if first.dtype == np.uint16 else 8, time_base=1 / self.rate, rate=self.rate,
                              frames=len(self.paths))
        self.copied: List[av.stream.Stream] = []

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

    def close(self) -> None:
        pass


def partial_path(target: Path) -> Path:
    """Where ``target`` is written until complete: a hidden name beside it, same extension (muxers need it)."""
    return target.with_name(f'.{target.stem}.partial{target.suffix}')


def _even_padding(pix_fmt: str, width: int, height: int) -> Tuple[int, int]:
    """(right, bottom) pixels that the encoder's chroma subsampling needs added."""
    both = any(tag in pix_fmt for tag in ('420', 'nv12', 'nv21', 'p010', 'p016'))
    horizontal = both or any(tag in pix_fmt for tag in ('422', 'nv16', 'p210', 'p216'))
    return (width % 2 if horizontal else 0), (height % 2 if both else 0)


class VideoFileSink:
    """Encode upscaled frames into a video file and copy the source's audio and subtitle streams.

    ``encoder`` says which encoder and pixel format (``codecs.choose_encoder``). A frame size
    that the pixel format cannot hold (odd with 4:2:0) is padded by one replicated row/column
    and ``report`` says so. Raises ``OptionError`` when the target container cannot carry a
    stream (e.g. SubRip subtitles in .mp4: use .mkv).
    """

    def __init__(self, target: Path, info: VideoInfo, copied: List[av.stream.Stream], encoder: EncoderChoice,
                 report: Report = print) -> None:
        self.target, self.partial = Path(target), partial_path(Path(target))
        self.info, self.copied, self.encoder, self.report = info, copied, encoder, report
        self.container: Optional[av.container.OutputContainer] = None
        self.stream = None
        self.mapping: Dict[int, av.stream.Stream] = {}
        self.pad = (0, 0)
        self.frames = 0
        self.waiting: List[av.Packet] = []  # copied packets that came before the first frame

    def open(self, width: int, height: int) -> None:
        """Create the (partial) file for ``width`` x ``height`` frames; called with the first frame."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.partial), 'w')
        self.container = container
        unsupported = [s for s in [*self.copied] if s.codec_context.name not in container.supported_codecs]
        if self.encoder.name not in container.supported_codecs and \
                av.codec.Codec(self.encoder.name, 'w').name not in container.supported_codecs:
            raise OptionError('codec', f'{self.encoder.name} cannot be stored in {self.target.suffix}; use .mkv')
        if unsupported:
            names = ', '.join(f'{s.type} #{s.index} ({s.codec_context.name})' for s in unsupported)
            raise OptionError('output', f'{self.target.suffix} cannot carry {names} of the source; write .mkv, which '
                              'carries every stream')
        self.pad = _even_padding(self.encoder.pix_fmt, width, height)
        if any(self.pad):
            self.report(f'note: {width}x{height} is padded to {width + self.pad[0]}x{height + self.pad[1]} for '
                        f'{self.encoder.pix_fmt} (4:2:0 needs even sizes); --pix-fmt yuv444p or --codec ffv1 keeps '
                        'the exact size')
        stream = container.add_stream(self.encoder.name, options=dict(self.encoder.options))
        stream.width, stream.height, stream.pix_fmt = width + self.pad[0], height + self.pad[1], self.encoder.pix_fmt
        stream.time_base = self.info.time_base
        stream.codec_context.time_base = self.info.time_base
        if self.info.rate:
            stream.codec_context.framerate = self.info.rate
        for name, value in self.info.color.items():
            if value:
                setattr(stream.codec_context, name, value)
        if self.info.display_matrix:
            stream.set_display_matrix(self.info.display_matrix)
        stream.metadata.update({k: v for k, v in self.info.stream_metadata.items() if k.lower() != 'encoder'})
        self.stream = stream
        for source in self.copied:
            copy = container.add_stream_from_template(source)
            copy.metadata.update(source.metadata)
            self.mapping[source.index] = copy
        container.metadata.update({k: v for k, v in self.info.metadata.items() if k.lower() != 'encoder'})

    def write_packet(self, packet: av.Packet) -> None:
        """Copy one audio/subtitle packet (its timestamps unchanged)."""
        if self.container is None:
            self.waiting.append(packet)
            return
        packet.stream = self.mapping[packet.stream.index]
        self.container.mux(packet)

    def _frame(self, array: np.ndarray, pts: int) -> av.VideoFrame:
        if any(self.pad):
            array = np.pad(array, ((0, self.pad[1]), (0, self.pad[0]), (0, 0)), mode='edge')
        frame = av.VideoFrame.from_ndarray(array, format='rgb48le' if array.dtype == np.uint16 else 'rgb24')
        color = self.info.color
        frame = frame.reformat(format=self.encoder.pix_fmt,
                               dst_colorspace=color.get('colorspace') if color.get('colorspace', UNSPECIFIED) !=
                               UNSPECIFIED else None,
                               dst_color_range=color.get('color_range') or MPEG_RANGE, threads=1)
        frame.pts, frame.time_base = pts, self.info.time_base
        return frame

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        """Encode one RGB HWC frame (``uint8``/``uint16``) at ``pts`` (source time base)."""
        if self.container is None:
            self.open(array.shape[1], array.shape[0])
            for packet in self.waiting:
                self.write_packet(packet)
            self.waiting.clear()
        self.container.mux(self.stream.encode(self._frame(array, pts)))
        self.frames += 1

    def close(self, complete: bool) -> None:
        """Flush and rename onto the target when ``complete``; otherwise remove the partial file."""
        try:
            if self.container is not None:
                if complete:
                    self.container.mux(self.stream.encode(None))
                self.container.close()
            if complete:
                if self.container is None:
                    raise ImageReadError(f'no frames were decoded; {self.target} was not written')
                os.replace(self.partial, self.target)
        finally:
            if self.partial.exists():
                self.partial.unlink()


class FrameFolderSink:
    """Upscaled frames as PNG files ``<prefix>_<index:06d>.png`` (16-bit for deep sources) in a folder.

    Written into a hidden partial folder beside the target and renamed when complete.
    """

    def __init__(self, target: Path, prefix: str = 'frame') -> None:
        self.target, self.partial = Path(target), Path(target).with_name(f'.{Path(target).name}.partial')
        self.prefix = prefix
        self.frames = 0

    def write_packet(self, packet: av.Packet) -> None:
        pass  # frames only: audio and subtitles have no place in a folder of images

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        if self.frames == 0:
            self.partial.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode('.png', np.ascontiguousarray(array[:, :, ::-1]))
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
    """Frames as raw RGB (``rgb24``, or ``rgb48le`` for deep sources) on a binary stream, for live viewers."""

    def __init__(self, stream: Optional[BinaryIO] = None) -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.frames = 0

    def write_packet(self, packet: av.Packet) -> None:
        pass  # raw video carries no audio

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        self.stream.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder('<'), copy=False).tobytes())
        self.frames += 1

    def close(self, complete: bool) -> None:
        self.stream.flush()


def viewer_command(width: int, height: int, bit_depth: int, rate: Optional[Fraction]) -> str:
    """The command that shows ``RawPipeSink``'s output: ``rt4ksr upscale IN - ... | <this>``."""
    fps = f'{float(rate):g}' if rate else '25'
    return (f'ffplay -f rawvideo -pixel_format {_rgb_format(bit_depth)} -video_size {width}x{height} -framerate '
            f'{fps} -   (or: mpv --demuxer=rawvideo --demuxer-rawvideo-w={width} --demuxer-rawvideo-h={height} '
            f'--demuxer-rawvideo-mp-format={_rgb_format(bit_depth)} --demuxer-rawvideo-fps={fps} -)')
