"""What an output container carries, asked of FFmpeg's muxer itself.

Every question is tried in a scratch file of the target's own extension (so FFmpeg picks the
muxer exactly as for the target): the muxer creates the streams, writes its header and takes
each copied stream's first packet, as the run will. Two muxers cannot say which codecs they
take (MPEG-TS and MPEG-PS answer "unknown" and then store any codec as private data that no
player reads), so for them ``KNOWN`` lists the stream types their specification (ISO/IEC
13818-1) defines, as FFmpeg's ``mpegtsenc.c`` / ``mpegenc.c`` map them.

Text subtitles a container cannot carry are converted to a text codec it can (``mov_text``
in MP4 <-> SubRip / ASS / WebVTT elsewhere) through FFmpeg's subtitle decoder and encoder;
other streams it cannot carry are an error that names them and the way on: a container that
carries them, or ``drop`` to leave them out.
"""
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import av

from rt4ksr_arch.errors import ImageReadError, OptionError
from rt4ksr_arch.media.codecs import EncoderChoice, captured_log, said

_TS = {'h264', 'hevc', 'vvc', 'mpeg1video', 'mpeg2video', 'mpeg4', 'av1', 'vc1', 'dirac', 'cavs', 'mp1', 'mp2', 'mp3',
       'aac', 'aac_latm', 'ac3', 'eac3', 'dts', 'truehd', 'opus', 's302m', 'dvb_subtitle', 'dvb_teletext',
       'arib_caption'}
_PS = {'mpeg1video', 'mpeg2video', 'h264', 'mp1', 'mp2', 'mp3', 'ac3', 'dts', 'pcm_s16be', 'pcm_dvd', 'mlp', 'truehd',
       'dvd_subtitle'}
KNOWN = {'mpegts': _TS, 'mpeg': _PS, 'vob': _PS, 'dvd': _PS, 'svcd': _PS, 'vcd': _PS}
ATTACHMENT_FORMATS = ('matroska', )  # the muxers that store attachments (fonts) as such
CHAPTER_FORMATS = ('matroska', 'webm', 'mp4', 'mov', 'ipod', 'ogg', 'ogv')  # the muxers that write chapters
TEXT_SUBTITLE = 0x20000  # AV_CODEC_PROP_TEXT_SUB
SUBTITLE_TARGETS = ('mov_text', 'subrip', 'ass', 'webvtt')  # text codecs with an FFmpeg encoder
COPIED_TYPES = ('audio', 'subtitle')  # attachments and chapters are metadata, data streams are left
ALTERNATIVES = ('.mkv', '.mp4', '.mov')  # containers suggested when the target cannot carry a stream
PROBE_SIZE = (256, 256)  # of the video stream in stream probes; the real size is opened in choose_encoder
PACKETS_SEARCHED = 2000  # packets read to find each copied stream's first packet


def codec_name(stream: av.stream.Stream) -> str:
    """The stream's codec as containers name it (``subrip`` for a stream FFmpeg decodes with ``srt``)."""
    context = stream.codec_context
    if context is None:
        return 'none'
    try:
        return context.codec.canonical_name
    except (AttributeError, av.FFmpegError):
        return context.name or 'none'


def is_text_subtitle(stream: av.stream.Stream) -> bool:
    try:
        return stream.type == 'subtitle' and bool(av.codec.Codec(codec_name(stream), 'r').properties & TEXT_SUBTITLE)
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


@dataclass(frozen=True)
class StreamPlan:
    """One source stream in the output: copied packet for packet, or (text subtitles) converted to ``convert_to``."""

    index: int
    kind: str
    codec: str
    convert_to: Optional[str] = None

    def describe(self) -> str:
        return f'{self.kind} #{self.index} ({self.codec})'


class Muxer:
    """Scratch output files of the format FFmpeg picks for ``suffix``; ``close`` removes them."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix.lower()
        self.folder = Path(tempfile.mkdtemp(prefix='rt4ksr_mux_'))
        self.count = 0
        try:
            with captured_log() as logs:
                probe = self._open()
        except (av.FFmpegError, ValueError) as err:
            self.close()
            raise OptionError('OUTPUT', f'FFmpeg has no muxer for {suffix!r} ({said(logs, err)}); name the output '
                              '.mp4 or .mkv') from None
        self.name = probe.format.name
        probe.close()

    def _open(self) -> av.container.OutputContainer:
        self.count += 1
        return av.open(str(self.folder / f'probe{self.count}{self.suffix}'), 'w')

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def carries(self, codec: str) -> bool:
        """The muxer takes streams of ``codec`` (a codec name: ``h264``, ``aac``): FFmpeg's answer, or ``KNOWN``."""
        if self.name in KNOWN:
            return codec in KNOWN[self.name]
        container = self._open()
        try:
            container.add_mux_stream(codec)
        except ValueError:
            return False
        finally:
            container.close()
        return True

    def writes(self, encoder: EncoderChoice, streams: Sequence[Tuple[av.stream.Stream, Optional[str]]],
               packets: Dict[int, av.Packet]) -> Optional[str]:
        """None when the muxer takes a stream of ``encoder`` plus ``streams`` (source stream, None to copy or a
        subtitle codec to convert to) with their first ``packets``, header and trailer; else FFmpeg's reason."""
        container = self._open()
        try:
            with captured_log() as logs:
                video = container.add_stream(encoder.name, options=dict(encoder.options))
                video.width, video.height = PROBE_SIZE
                video.pix_fmt = encoder.pix_fmt
                outputs = [add_copy(container, source, convert_to) for source, convert_to in streams]
                container.start_encoding()
                for (source, _), (output, converter) in zip(streams, outputs):
                    packet = packets.get(source.index)
                    if packet is not None:
                        write_copied(container, packet, output, converter)
                container.close()
        except (av.FFmpegError, ValueError, OSError) as err:
            return said(logs, err)
        finally:
            container.close()
        return None


class SubtitleConverter:
    """Text subtitle packets re-encoded for another text codec: FFmpeg's decoder, then its encoder (timing kept)."""

    def __init__(self, source: av.stream.Stream, output: av.stream.Stream) -> None:
        self.decoder = source.codec_context
        if not self.decoder.is_open:
            self.decoder.open()
        self.encoder = output.codec_context
        self.encoder.subtitle_header = self.decoder.subtitle_header  # styles (ASS header) travel along
        output.time_base = self.encoder.time_base = source.time_base

    def convert(self, packet: av.Packet) -> Optional[av.Packet]:
        subtitle = self.decoder.decode2(packet)
        if subtitle is None:
            return None
        out = self.encoder.encode_subtitle(subtitle)
        out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
        return out


def add_copy(container: av.container.OutputContainer, source: av.stream.Stream, convert_to: Optional[str]
             ) -> Tuple[av.stream.Stream, Optional[SubtitleConverter]]:
    """The output stream for ``source`` (copied, or converted to ``convert_to``), with its metadata and disposition."""
    if convert_to:
        output = container.add_stream(convert_to)
        converter = SubtitleConverter(source, output)
    else:
        output, converter = container.add_stream_from_template(source), None
    output.metadata.update(source.metadata)
    output.disposition = source.disposition
    return output, converter


def write_copied(container: av.container.OutputContainer, packet: av.Packet, output: av.stream.Stream,
                 converter: Optional[SubtitleConverter]) -> None:
    """Mux one copied (or converted) packet into ``output``, timestamps unchanged."""
    if converter is not None:
        packet = converter.convert(packet)
        if packet is None:
            return
    packet.stream = output
    container.mux(packet)


def first_packets(container: av.container.InputContainer, indices: Sequence[int]) -> Dict[int, av.Packet]:
    """The first packet with data of each stream in ``indices`` of a freshly opened ``container``."""
    wanted = [container.streams[i] for i in indices]
    found: Dict[int, av.Packet] = {}
    if wanted:
        for count, packet in enumerate(container.demux(*wanted)):
            if packet.size and packet.stream.index not in found:
                found[packet.stream.index] = packet
            if len(found) == len(wanted) or count >= PACKETS_SEARCHED:
                break
    return found


def _dropped(stream: av.stream.Stream, drop: Sequence[str]) -> bool:
    return stream.type in drop or str(stream.index) in drop


ATTACHED_PIC = int(av.stream.Disposition.attached_pic)


def plan_streams(path: Union[str, Path], muxer: Muxer, encoder: EncoderChoice, drop: Sequence[str] = ()
                 ) -> Tuple[List[StreamPlan], List[str]]:
    """(what becomes of each audio / subtitle stream of ``path`` in ``muxer``'s format, notes).

    ``drop``: stream types (``audio``, ``subtitle``) or indices to leave out. Each other stream is
    copied when the muxer takes it, else (text subtitles) converted to a text codec it takes.
    Raises ``OptionError`` naming a stream that neither works for, with containers that carry
    every stream (tried the same way) and the ``drop`` that leaves it out; ``ImageReadError``
    when ``path`` cannot be read.
    """
    try:
        source = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise ImageReadError(f'cannot open video {path}: {err}') from None
    try:
        streams = [s for s in source.streams if s.type in COPIED_TYPES]
        packets = first_packets(source, [s.index for s in streams])
        kept = [s for s in streams if not _dropped(s, drop)]
        notes = [f'{describe(s)} left out (--drop)' for s in streams if _dropped(s, drop)]
        notes += [f'{describe(s)}{" (an attached picture: cover art)" if s.disposition & ATTACHED_PIC else ""} not '
                  'kept: only the first video stream is upscaled' for s in source.streams.video[1:]]
        plans: List[StreamPlan] = []
        chosen: List[Tuple[av.stream.Stream, Optional[str]]] = []
        for stream in kept:
            for convert_to in (None, *(_subtitle_targets(muxer, stream) if is_text_subtitle(stream) else ())):
                if muxer.carries(convert_to or codec_name(stream)) and \
                        muxer.writes(encoder, [*chosen, (stream, convert_to)], packets) is None:
                    break
            else:
                reason = muxer.writes(encoder, [(stream, None)], packets) if muxer.carries(codec_name(stream)) \
                    else 'FFmpeg has no way to store it there'
                raise OptionError('OUTPUT', unplaceable(path, muxer.suffix, stream, encoder, reason, kept, packets))
            chosen.append((stream, convert_to))
            plans.append(StreamPlan(stream.index, stream.type, codec_name(stream), convert_to))
            if convert_to:
                notes.append(f'{describe(stream)} converted to {convert_to} for {muxer.suffix} (text kept; styling '
                             'may be simplified)')
        return plans, notes
    finally:
        source.close()


def describe(stream: av.stream.Stream) -> str:
    return f'{stream.type} #{stream.index} ({codec_name(stream)})'


def _subtitle_targets(muxer: Muxer, stream: av.stream.Stream) -> List[str]:
    container = muxer._open()
    preferred = container.default_subtitle_codec
    container.close()
    ordered = dict.fromkeys([preferred, *SUBTITLE_TARGETS])
    return [c for c in ordered if c not in ('none', codec_name(stream))]


def unplaceable(path: Union[str, Path], suffix: str, stream: av.stream.Stream, encoder: EncoderChoice,
                reason: Optional[str], kept: Sequence[av.stream.Stream], packets: Dict[int, av.Packet]) -> str:
    """The error text for a stream ``suffix`` cannot carry: which, why, and the ways on that work."""
    source_suffix = Path(path).suffix.lower()
    candidates = [s for s in dict.fromkeys([source_suffix, *ALTERNATIVES]) if s and s != suffix]
    working = []
    for candidate in candidates:
        try:
            other = Muxer(candidate)
        except OptionError:
            continue
        try:
            if all(other.carries(codec_name(s)) for s in kept) and other.carries(encoder.codec) and \
                    other.writes(encoder, [(s, None) for s in kept], packets) is None:
                working.append(candidate)
        finally:
            other.close()
    ways = ([f'write {" or ".join(working)} (carries every stream)'] if working else []) + \
        [f'pass --drop {stream.index} (or --drop {stream.type}) to leave it out']
    return (f'{suffix} cannot carry {describe(stream)} of {Path(path).name}' + (f': {reason}' if reason else '') +
            f'; {", or ".join(ways)}')
