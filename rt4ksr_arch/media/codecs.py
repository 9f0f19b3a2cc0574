"""Which FFmpeg encoder, pixel format and options a video is written with.

``--codec`` takes a family (``h264`` default, ``h265``/``hevc``, ``av1``, ``ffv1``) or any
FFmpeg encoder name PyAV ships (``libx264``, ``h264_nvenc``, ...). On CUDA the family's NVENC
encoder is tried first and, when the driver or GPU cannot open it, the software encoder is
used instead (the fallback is reported). CRF and preset are mapped onto each encoder's own
option names; FFV1 is lossless and ignores both.
"""
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, Optional, Tuple

import av

from rt4ksr_arch.errors import OptionError

FAMILIES = {'h264': ('libx264', 'h264_nvenc'), 'h265': ('libx265', 'hevc_nvenc'), 'hevc': ('libx265', 'hevc_nvenc'),
            'av1': ('libsvtav1', 'av1_nvenc'), 'ffv1': ('ffv1', None)}
DEFAULT_CRF = {'libx264': 18, 'libx265': 20, 'libsvtav1': 28, 'h264_nvenc': 19, 'hevc_nvenc': 21, 'av1_nvenc': 28}
DEFAULT_PRESET = {'libx264': 'veryfast', 'libx265': 'veryfast', 'libsvtav1': '10', 'h264_nvenc': 'p4',
                  'hevc_nvenc': 'p4', 'av1_nvenc': 'p4'}
# the pixel format of each bit depth that every player and browser decodes
PLAYABLE = {8: 'yuv420p', 10: 'yuv420p10le'}
NVENC_FORMAT = {'yuv420p': 'yuv420p', 'yuv420p10le': 'p010le'}


@dataclass(frozen=True)
class EncoderChoice:
    """An encoder that opened: its name, pixel format, options, and what was adapted (for the user)."""

    name: str
    pix_fmt: str
    options: Dict[str, str]
    notes: Tuple[str, ...] = ()


def _encoder_exists(name: str) -> bool:
    try:
        av.codec.Codec(name, 'w')
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def _opens(name: str, pix_fmt: str, options: Dict[str, str]) -> Optional[str]:
    """None when ``name`` opens on this machine with ``pix_fmt`` (tiny probe frame size), else FFmpeg's reason."""
    try:
        context = av.codec.CodecContext.create(name, 'w')
        context.width, context.height, context.pix_fmt = 256, 256, pix_fmt
        context.time_base, context.framerate = Fraction(1, 25), Fraction(25)
        context.options = options
        context.open()
    except (av.FFmpegError, ValueError) as err:
        return str(err)
    return None


def encoder_options(name: str, crf: Optional[int], preset: Optional[str]) -> Dict[str, str]:
    """FFmpeg private options for ``name`` from a CRF / preset (defaults: ``DEFAULT_CRF`` / ``DEFAULT_PRESET``)."""
    if name == 'ffv1':
        return {'level': '3', 'slicecrc': '1'}
    crf = DEFAULT_CRF.get(name) if crf is None else crf
    preset = DEFAULT_PRESET.get(name) if preset is None else preset
    options: Dict[str, str] = {}
    if name.endswith('_nvenc'):
        options.update(rc='vbr', b='0')
        if crf is not None:
            options['cq'] = str(crf)
    elif crf is not None:
        options['crf'] = str(crf)
    if preset is not None:
        options['preset'] = str(preset)
    if name == 'libx265':
        options['x265-params'] = 'log-level=error'
    return options


def pixel_format(name: str, bit_depth: int, requested: Optional[str]) -> Tuple[str, Tuple[str, ...]]:
    """(pixel format, notes): ``requested``, else the playable format of the source's bit depth.

    A 10-bit source is written 10-bit when the encoder has a 10-bit format, else 8-bit (noted).
    Raises ``OptionError('pix_fmt', ...)`` for a format the encoder does not take.
    """
    supported = [f.name for f in (av.codec.Codec(name, 'w').video_formats or [])]
    if requested:
        if supported and requested not in supported:
            raise OptionError('pix_fmt', f'{requested!r} is not accepted by {name}; it takes {", ".join(supported)}')
        return requested, ()
    wanted = PLAYABLE[10 if bit_depth > 8 else 8]
    if name.endswith('_nvenc'):
        wanted = NVENC_FORMAT[wanted]
    if not supported or wanted in supported:
        return wanted, ()
    if name == 'ffv1' and bit_depth > 8 and 'yuv420p16le' in supported:
        return 'yuv420p16le', ()
    fallback = PLAYABLE[8] if PLAYABLE[8] in supported else supported[0]
    return fallback, (f'{name} has no {wanted}; writing {fallback}',)


def choose_encoder(codec: str, bit_depth: int, cuda: bool, crf: Optional[int] = None, preset: Optional[str] = None,
                   pix_fmt: Optional[str] = None, opens: Callable[[str, str, Dict[str, str]], Optional[str]] = _opens
                   ) -> EncoderChoice:
    """The encoder for ``codec`` (a family or an FFmpeg encoder name) that opens on this machine.

    ``cuda``: try the family's NVENC encoder first. An explicitly named NVENC encoder that does
    not open falls back to the family's software encoder, with a note saying why. Raises
    ``OptionError('codec', ...)`` for an unknown codec or one that opens nowhere.
    """
    family = next((f for f, names in FAMILIES.items() if codec in (f, *names)), None)
    if family is None and not _encoder_exists(codec):
        raise OptionError('codec', f'{codec!r} is not an encoder FFmpeg has here; use h264, h265, av1, ffv1 or an '
                          'FFmpeg encoder name such as libx264')
    software, nvenc = FAMILIES[family] if family else (codec, None)
    if codec.endswith('_nvenc'):
        candidates = [codec, software]
    elif family and cuda and nvenc and codec != software:
        candidates = [nvenc, software]
    else:
        candidates = [codec if family is None else software]
    notes = []
    for name in candidates:
        fmt, fmt_notes = pixel_format(name, bit_depth, pix_fmt)
        # a preset is named in the first encoder's terms (x264's 'slow' is no NVENC preset)
        options = encoder_options(name, crf, preset if name == candidates[0] else None)
        reason = opens(name, fmt, options)
        if reason is None:
            return EncoderChoice(name, fmt, options, tuple(notes) + fmt_notes)
        notes.append(f'{name} is not usable here ({reason.strip()}); falling back')
    raise OptionError('codec', f'{codec}: no encoder opened ({"; ".join(notes)})')
