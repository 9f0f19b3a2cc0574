"""Which FFmpeg encoder, pixel format and options a video is written with.

``--codec`` takes a family (``h264``, ``h265``/``hevc``, ``av1``, ``vp9``, ``vp8``, ``ffv1``,
``raw``) or any FFmpeg video encoder name PyAV ships (``libx264``, ``h264_nvenc``, ...). Without
it the output container and the source's bit depth decide (``DEFAULT_ORDER``: H.264 for 8-bit,
HEVC Main10 for deeper sources, VP9 / AV1 where the container holds nothing else, as WebM). On
CUDA the family's NVENC encoder is tried first and, when the driver or GPU cannot open it, the
software encoder is used instead (the fallback is reported). CRF and preset are mapped onto each
encoder's own option names; ``crf 0`` asks for the encoder's lossless mode (x264 ``qp 0``, x265 /
SVT-AV1 / VP9 ``lossless``, NVENC ``tune lossless``). Lossless-only encoders (FFV1, raw) take
neither and default to RGB (or 4:4:4), which holds any frame size exactly. HDR10 mastering-display
and content-light-level metadata go into the encoder's own parameters (x264, x265, SVT-AV1).
"""
import logging
import os
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import av

from rt4ksr_arch.errors import OptionError

FAMILIES = {'h264': ('libx264', 'h264_nvenc'), 'h265': ('libx265', 'hevc_nvenc'), 'hevc': ('libx265', 'hevc_nvenc'),
            'av1': ('libsvtav1', 'av1_nvenc'), 'vp9': ('libvpx-vp9', None), 'vp8': ('libvpx', None),
            'ffv1': ('ffv1', None), 'raw': ('rawvideo', None)}
# Without --codec: the first family the output container carries. 10-bit sources get HEVC Main10
# first: H.264 High 10 has almost no hardware or browser decoders, HEVC Main10 plays on phones,
# TVs, macOS/Windows and Chrome/Edge/Safari with hardware decoding.
DEFAULT_ORDER = {8: ('h264', 'vp9', 'av1', 'h265', 'vp8', 'raw'), 10: ('h265', 'av1', 'h264', 'vp9', 'ffv1', 'raw')}
DEFAULT_CRF = {'libx264': 18, 'libx265': 20, 'libsvtav1': 28, 'libvpx-vp9': 31, 'libvpx': 10, 'h264_nvenc': 19,
               'hevc_nvenc': 21, 'av1_nvenc': 28}
DEFAULT_PRESET = {'libx264': 'veryfast', 'libx265': 'veryfast', 'libsvtav1': '10', 'libvpx-vp9': '8', 'libvpx': '8',
                  'h264_nvenc': 'p4', 'hevc_nvenc': 'p4', 'av1_nvenc': 'p4'}
PRESET_OPTION = {'libvpx-vp9': 'cpu-used', 'libvpx': 'cpu-used'}  # the option a --preset sets (default 'preset')
PARAMS_OPTION = {'libx264': 'x264-params', 'libx264rgb': 'x264-params', 'libx265': 'x265-params',
                 'libsvtav1': 'svtav1-params'}
LOSSLESS = {'libx264': {'qp': '0'}, 'libx264rgb': {'qp': '0'}, 'libx265': {'x265-params': 'lossless=1'},
            'libsvtav1': {'svtav1-params': 'lossless=1'}, 'libvpx-vp9': {'lossless': '1'},
            'h264_nvenc': {'tune': 'lossless'}, 'hevc_nvenc': {'tune': 'lossless'}}
# the pixel format of each bit depth that players and browsers decode
PLAYABLE = {8: 'yuv420p', 10: 'yuv420p10le'}
NVENC_FORMAT = {'yuv420p': 'yuv420p', 'yuv420p10le': 'p010le'}
# lossless-only encoders: exact RGB first (no matrix, no subsampling, any size), then 4:4:4
EXACT_FORMATS = {8: ('bgr0', 'rgb24', 'gbrp', 'yuv444p'), 10: ('gbrp10le', 'gbrp16le', 'rgb48le', 'yuv444p10le'),
                 12: ('gbrp12le', 'gbrp16le', 'rgb48le', 'yuv444p12le'), 16: ('gbrp16le', 'rgb48le', 'yuv444p16le')}
# x265 opens narrower pictures but corrupted the heap encoding them (crash at exit; FFmpeg 8.1 wheel of PyAV 18)
MIN_WIDTH = {'libx265': 64}
LOSSY, LOSSLESS_PROP = 2, 4  # AV_CODEC_PROP_LOSSY / _LOSSLESS


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata: SMPTE ST 2086 mastering display and CTA-861.3 content light level.

    ``primaries``: CIE 1931 (x, y) of red, green, blue; ``white``: (x, y); ``luminance``: (min,
    max) cd/m²; ``light``: (MaxCLL, MaxFALL) cd/m². Either part may be absent (None).
    """

    primaries: Optional[Tuple[Tuple[float, float], ...]] = None
    white: Optional[Tuple[float, float]] = None
    luminance: Optional[Tuple[float, float]] = None
    light: Optional[Tuple[int, int]] = None

    @classmethod
    def from_side_data(cls, mastering: Optional[bytes], light: Optional[bytes]) -> Optional['HdrMetadata']:
        """From FFmpeg's frame side data: ``AVMasteringDisplayMetadata`` (88 bytes: 10 AVRationals
        -- R, G, B, white point (x, y), min and max luminance -- then has_primaries, has_luminance)
        and ``AVContentLightMetadata`` (two unsigned ints). None when neither is there."""
        fields = {}
        if mastering is not None and len(mastering) >= 88:
            values = struct.unpack('<20i2i', mastering[:88])
            ratios = [values[2 * k] / values[2 * k + 1] if values[2 * k + 1] else 0.0 for k in range(10)]
            if values[20]:
                fields['primaries'] = tuple((ratios[2 * k], ratios[2 * k + 1]) for k in range(3))
                fields['white'] = (ratios[6], ratios[7])
            if values[21]:
                fields['luminance'] = (ratios[8], ratios[9])
        if light is not None and len(light) >= 8:
            fields['light'] = struct.unpack('<2I', light[:8])
        return cls(**fields) if fields else None

    def describe(self) -> str:
        parts = []
        if self.luminance:
            parts.append(f'mastering display {self.luminance[1]:g}/{self.luminance[0]:g} cd/m²')
        if self.light:
            parts.append(f'MaxCLL {self.light[0]}, MaxFALL {self.light[1]}')
        return ', '.join(parts)


def hdr_parameters(name: str, hdr: HdrMetadata) -> Optional[str]:
    """``hdr`` in the syntax of ``name``'s parameter string (x264 / x265 / SVT-AV1), or None if it has none.

    x264 and x265 take ST 2086 in 0.00002 (chromaticity) and 0.0001 cd/m² (luminance) units,
    G, B, R order (their docs); SVT-AV1 takes the same order as decimals.
    """
    if name not in PARAMS_OPTION:
        return None
    decimal = name == 'libsvtav1'
    params = []
    if hdr.primaries and hdr.white and hdr.luminance:
        (rx, ry), (gx, gy), (bx, by) = hdr.primaries

        def xy(x: float, y: float) -> str:
            return f'{x:.4f},{y:.4f}' if decimal else f'{round(x * 50000)},{round(y * 50000)}'

        low, high = hdr.luminance
        lum = f'{high:g},{low:g}' if decimal else f'{round(high * 10000)},{round(low * 10000)}'
        key = 'master-display' if name == 'libx265' else 'mastering-display'
        params.append(f'{key}=G({xy(gx, gy)})B({xy(bx, by)})R({xy(rx, ry)})WP({xy(*hdr.white)})L({lum})')
    if hdr.light:
        key = {'libx265': 'max-cll', 'libsvtav1': 'content-light'}.get(name, 'cll')
        params.append(f'{key}={hdr.light[0]},{hdr.light[1]}')
    if name == 'libx265' and params:
        params.insert(0, 'hdr10=1')
    return ':'.join(params) or None


@dataclass(frozen=True)
class EncoderChoice:
    """An encoder that opened: its name, pixel format, options, and what was adapted (for the user)."""

    name: str
    pix_fmt: str
    options: Dict[str, str]
    notes: Tuple[str, ...] = ()

    @property
    def codec(self) -> str:
        """The codec it writes, as containers name it (``h264`` for ``libx264``)."""
        return av.codec.Codec(self.name, 'w').canonical_name

    @property
    def rgb(self) -> bool:
        """The pixel format is RGB: no YUV matrix is involved (tagged as such)."""
        return av.VideoFormat(self.pix_fmt).is_rgb

    def describe(self) -> str:
        return f'{self.name} {self.pix_fmt} ' + ' '.join(f'{k}={v}' for k, v in self.options.items())


def lossless_only(name: str) -> bool:
    """An encoder that only stores exactly (FFV1, raw, UT Video, PNG): CRF and presets do not apply."""
    properties = av.codec.Codec(name, 'w').properties
    return bool(properties & LOSSLESS_PROP) and not properties & LOSSY


def option_names(name: str) -> List[str]:
    """The options encoder ``name`` takes: FFmpeg's generic codec options and its own (PyAV does not say which
    options an encoder left unused, so unknown ones are refused before opening)."""
    options = av.codec.CodecContext.create(name, 'w').supported_options
    return [option.name for option in (*options.generic, *options.private)]


def _video_encoder(name: str) -> bool:
    try:
        return av.codec.Codec(name, 'w').type == 'video'
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False


@contextmanager
def captured_log() -> Iterator[List[Tuple[int, str, str]]]:
    """FFmpeg's messages of this thread inside the block, collected instead of printed (for error texts)."""
    level = av.logging.get_level()
    if level is None:  # PyAV's log callback (which Capture needs) is off until a level is set
        av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        if level is None:
            av.logging.set_level(None)


def said(logs: Sequence[Tuple[int, str, str]], err: Exception) -> str:
    """``err`` in FFmpeg's own words from ``logs`` (``[component] message``; scratch file names left out)."""
    text = '; '.join(dict.fromkeys(f'[{name}] {line.strip()}' if name else line.strip()
                                   for _, name, line in logs if line.strip()))
    if isinstance(err, av.FFmpegError):
        # FFmpeg does not log a message again that repeats the last one: PyAV kept it in the error
        text = text or str(err).partition('last error log: ')[2].strip()
        return f'{err.strerror}: {text}' if text else str(err.strerror)
    return f'{err}' + (f' ({text})' if text and text not in str(err) else '')


def even_padding(pix_fmt: str, width: int, height: int) -> Tuple[int, int]:
    """(right, bottom) pixels that the pixel format's chroma subsampling needs added."""
    luma, *chroma = av.VideoFormat(pix_fmt, 4, 4).components
    if not chroma:
        return 0, 0
    return (width % 2 if chroma[0].width < luma.width else 0), (height % 2 if chroma[0].height < luma.height else 0)


def _opens(name: str, pix_fmt: str, options: Dict[str, str], size: Tuple[int, int]) -> Optional[str]:
    """None when ``name`` opens on this machine with ``pix_fmt`` at ``size`` (width, height), else FFmpeg's reason."""
    if size[0] < MIN_WIDTH.get(name, 0):
        return f'{name} needs frames at least {MIN_WIDTH[name]} pixels wide'
    try:
        with captured_log() as logs:
            context = av.codec.CodecContext.create(name, 'w')
            pad = even_padding(pix_fmt, *size)  # as the sink pads the frames
            context.width, context.height = size[0] + pad[0], size[1] + pad[1]
            context.pix_fmt = pix_fmt
            context.time_base, context.framerate = Fraction(1, 25), Fraction(25)
            context.options = dict(options)
            context.open()
    except (av.FFmpegError, ValueError) as err:
        return said(logs, err)
    return None


def merge_options(base: Mapping[str, str], extra: Mapping[str, str]) -> Dict[str, str]:
    """``base`` updated by ``extra``; ``*-params`` strings (x264/x265/SVT-AV1) are joined with ':' (extra last wins)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = f'{merged[key]}:{value}' if key.endswith('-params') and merged.get(key) else value
    return merged


def encoder_options(name: str, crf: Optional[int], preset: Optional[str], hdr: Optional[HdrMetadata] = None,
                    extra: Mapping[str, str] = {}) -> Dict[str, str]:
    """FFmpeg private options for ``name``: CRF / preset (defaults ``DEFAULT_CRF`` / ``DEFAULT_PRESET``; CRF 0
    is the encoder's lossless mode), HDR10 metadata, then the user's own ``extra`` options."""
    if name == 'ffv1':
        return merge_options({'level': '3', 'slicecrc': '1'}, extra)
    if lossless_only(name):
        return dict(extra)
    options: Dict[str, str] = {}
    lossless = crf == 0 and name in LOSSLESS
    # a constant quantizer of the user's (qp=N) replaces the default CRF, which the encoders would prefer
    crf = (None if 'qp' in extra else DEFAULT_CRF.get(name)) if crf is None else crf
    preset = DEFAULT_PRESET.get(name) if preset is None else preset
    if name.endswith('_nvenc'):
        options.update(rc='vbr', b='0')
        if crf is not None and not lossless:
            options['cq'] = str(crf)
    elif crf is not None and not lossless:
        options['crf'] = str(crf)
        if name.startswith('libvpx'):
            options['b'] = '0' if name == 'libvpx-vp9' else '50M'  # constant quality (VP8 needs a ceiling)
    if name.startswith('libvpx'):
        options.update(deadline='realtime', **({'row-mt': '1'} if name == 'libvpx-vp9' else {}))
    if preset is not None:
        options[PRESET_OPTION.get(name, 'preset')] = str(preset)
    if name == 'libx265':
        options['x265-params'] = 'log-level=error'
    if lossless:
        options = merge_options(options, LOSSLESS[name])
    hdr_params = hdr_parameters(name, hdr) if hdr else None
    if hdr_params:
        options = merge_options(options, {PARAMS_OPTION[name]: hdr_params})
    return merge_options(options, extra)


def pixel_format(name: str, bit_depth: int, requested: Optional[str]) -> Tuple[str, Tuple[str, ...]]:
    """(pixel format, notes): ``requested``, else the playable format of the source's bit depth
    (lossless-only encoders: RGB, else 4:4:4, of that depth: exact at any size).

    A 10-bit source is written 10-bit when the encoder has a 10-bit format, else 8-bit (noted).
    Raises ``OptionError('pix_fmt', ...)`` for a format the encoder does not take.
    """
    supported = [f.name for f in (av.codec.Codec(name, 'w').video_formats or [])]
    if requested:
        if supported and requested not in supported:
            raise OptionError('pix_fmt', f'{requested!r} is not accepted by {name}; it takes {", ".join(supported)}')
        return requested, ()
    depth = 8 if bit_depth <= 8 else 10 if bit_depth <= 10 else 12 if bit_depth <= 12 else 16
    if lossless_only(name):
        # rawvideo is for .y4m, which holds YUV only
        exact = [f for f in EXACT_FORMATS[depth] if name != 'rawvideo' or not av.VideoFormat(f).is_rgb]
        fmt = next((f for f in exact if not supported or f in supported), None)
        if fmt:
            return fmt, ()
    wanted = PLAYABLE[10 if bit_depth > 8 else 8]
    if name.endswith('_nvenc'):
        wanted = NVENC_FORMAT[wanted]
    if not supported or wanted in supported:
        return wanted, ()
    fallback = PLAYABLE[8] if PLAYABLE[8] in supported else supported[0]
    return fallback, (f'{name} has no {wanted}; writing {fallback}',)


def choose_encoder(codec: str, bit_depth: int, cuda: bool, crf: Optional[int] = None, preset: Optional[str] = None,
                   pix_fmt: Optional[str] = None, hdr: Optional[HdrMetadata] = None, extra: Mapping[str, str] = {},
                   size: Tuple[int, int] = (256, 256),
                   opens: Callable[..., Optional[str]] = _opens) -> EncoderChoice:
    """The encoder for ``codec`` (a family or an FFmpeg video encoder name) that opens on this machine at ``size``.

    ``cuda``: try the family's NVENC encoder first. An explicitly named NVENC encoder that does
    not open falls back to the family's software encoder, with a note saying why. ``hdr``: HDR10
    metadata to write (noted where the encoder cannot). ``extra``: the user's own FFmpeg options.
    Raises ``OptionError`` (field ``codec``, ``crf``, ``preset`` or ``pix_fmt``) for an unknown or
    non-video codec, a CRF / preset the encoder does not take, or one that opens nowhere.
    """
    family = next((f for f, names in FAMILIES.items() if codec in (f, *names)), None)
    if family is None and not _video_encoder(codec):
        raise OptionError('codec', f'{codec!r} is not a video encoder FFmpeg has here; use h264, h265, av1, vp9, ffv1 '
                          'or an FFmpeg video encoder name such as libx264')
    software, nvenc = FAMILIES[family] if family else (codec, None)
    if codec.endswith('_nvenc'):
        candidates = [codec, software]
    elif family and cuda and nvenc and codec != software:
        candidates = [nvenc, software]
    else:
        candidates = [codec if family is None else software]
    if lossless_only(candidates[-1]):
        for field, value in (('crf', crf), ('preset', preset)):
            if value is not None:
                raise OptionError(field, f'does not apply to {candidates[-1]}, which is lossless; leave it out')
    notes = []
    for name in candidates:
        unknown = [key for key in extra if key not in option_names(name)]
        if unknown:
            raise OptionError('encoder_options', f'{name} has no option {", ".join(unknown)} (its options: ffmpeg -h '
                              f'encoder={name})')
        fmt, fmt_notes = pixel_format(name, bit_depth, pix_fmt)
        # a preset is named in the first encoder's terms (x264's 'slow' is no NVENC preset)
        user_preset = preset if name == candidates[0] else None
        options = encoder_options(name, crf, user_preset, hdr, extra)
        reason = opens(name, fmt, options, size)
        if reason is None:
            hdr_notes = () if not hdr or name in PARAMS_OPTION else (
                f'HDR10 metadata ({hdr.describe()}) is not written by {name}; --codec h265 (libx265) writes it',)
            return EncoderChoice(name, fmt, options, tuple(notes) + fmt_notes + hdr_notes)
        if user_preset is not None and opens(name, fmt, encoder_options(name, crf, None, hdr, extra), size) is None:
            raise OptionError('preset', f'{preset!r} is not a preset of {name} ({reason.strip()}); '
                              f'e.g. {DEFAULT_PRESET.get(name, "leave it out")}')
        if extra and opens(name, fmt, encoder_options(name, crf, user_preset, hdr), size) is None:
            raise OptionError('encoder_options', f'{name} does not take {_pairs(extra)} ({reason.strip()})')
        notes.append(f'{name} is not usable here ({reason.strip()}); falling back')
    raise OptionError('codec', f'{codec}: no encoder opened ({"; ".join(notes)})')


def _pairs(options: Mapping[str, str]) -> str:
    return ' '.join(f'{k}={v}' for k, v in options.items())


def parse_encoder_options(pairs: Sequence[str]) -> Dict[str, str]:
    """``['KEY=VALUE', ...]`` -> dict. Raises ``OptionError('encoder_options', ...)`` for an item without '='."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise OptionError('encoder_options', f'expected KEY=VALUE (FFmpeg option of the encoder), got {pair!r}')
        options = merge_options(options, {key: value})
    return options


def set_verbosity(verbose: bool) -> None:
    """FFmpeg's and the encoders' own messages: none printed (errors are kept for our messages), or
    everything with ``verbose``. x264 prints a bad preset itself, before FFmpeg's log is involved.

    x265 is quietened through its ``log-level`` parameter (``encoder_options``) and SVT-AV1 through
    its ``SVT_LOG`` environment variable (1 = errors; a value the user set is kept).
    """
    av.logging.set_level(av.logging.VERBOSE if verbose else av.logging.ERROR)
    # without verbose FFmpeg's errors are not printed as they happen: our errors and warnings quote them
    logging.getLogger('libav').setLevel(logging.NOTSET if verbose else logging.CRITICAL + 1)
    if verbose:
        os.environ.setdefault('SVT_LOG', '4')
    else:
        os.environ.setdefault('SVT_LOG', '1')
