"""Video through rt4ksr_arch.media (PyAV), on clips these tests make: streams, timestamps, colour, 10-bit, sizes."""
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from rt4ksr_arch import RT4KSR, InferenceOptions, Upscaler
from rt4ksr_arch.errors import ImageReadError, OptionError
from rt4ksr_arch.media import VideoOptions, choose_encoder, upscale_video
from tests.helpers import REPO, randomize_, run_module

TB = Fraction(1, 1000)
VFR_PTS = [0, 40, 100, 120, 200, 230, 300, 333]  # ms: irregular on purpose
BT709 = {'color_primaries': 1, 'color_trc': 1, 'colorspace': 1, 'color_range': 1}


def smooth_frames(count: int, height: int, width: int, peak: int, dtype, seed: int = 0) -> list:
    """Smooth colour images (chroma subsampling and x264 keep them close), one per frame."""
    gen = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    frames = []
    for _ in range(count):
        a = gen.uniform(0.2, 0.8, (3, 3))
        img = np.stack([a[c, 0] + 0.2 * np.sin(6 * x * a[c, 1] + 4 * y * a[c, 2]) for c in range(3)], -1)
        frames.append(np.rint(img.clip(0, 1) * peak).astype(dtype))
    return frames


def write_clip(path: Path, frames: list, codec: str = 'libx264', pix_fmt: str = 'yuv420p', audio: bool = False,
               subtitles: bool = False, rotation: int = 0, options: dict = None, sar: Fraction = None) -> None:
    """A clip with ``frames`` at VFR_PTS (ms), BT.709 tags, and optionally an AAC tone, SubRip subtitles and a
    sample aspect ratio."""
    out = av.open(str(path), 'w')
    out.metadata['title'] = 'rt4ksr test clip'
    video = out.add_stream(codec, options=options or {'preset': 'ultrafast'})
    video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
    video.time_base = video.codec_context.time_base = TB
    for name, value in BT709.items():
        setattr(video.codec_context, name, value)
    if rotation:
        video.set_display_rotation(rotation)
    if sar:
        video.codec_context.sample_aspect_ratio = sar
    if audio:
        sound = out.add_stream('aac', rate=48000)
        sound.metadata['language'] = 'fra'
    if subtitles:
        srt = path.with_suffix('.srt')
        srt.write_text('1\n00:00:00,050 --> 00:00:00,150\nHello\n\n2\n00:00:00,160 --> 00:00:00,300\nWorld\n\n')
        subs_in = av.open(str(srt))
        subs = out.add_stream_from_template(subs_in.streams[0])
        subs.metadata['language'] = 'eng'
    rgb = 'rgb48le' if frames[0].dtype == np.uint16 else 'rgb24'
    for pts, array in zip(VFR_PTS, frames):
        frame = av.VideoFrame.from_ndarray(array, format=rgb)
        frame = frame.reformat(format=pix_fmt, dst_colorspace=1, dst_color_range=1, threads=1)
        frame.pts, frame.time_base = pts, TB
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if audio:
        t = np.arange(int(48000 * 0.35)) / 48000
        tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                          format='fltp', layout='mono')
        tone.sample_rate, tone.pts = 48000, 0
        out.mux(sound.encode(tone))
        out.mux(sound.encode(None))
    if subtitles:
        for packet in subs_in.demux():
            if packet.size:
                packet.stream = subs
                out.mux(packet)
        subs_in.close()
    out.close()


def demuxed(path: Path, kind: str) -> list:
    """(pts as seconds, payload bytes) of every packet of the first ``kind`` stream, in file order."""
    with av.open(str(path)) as c:
        stream = [s for s in c.streams if s.type == kind][0]
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(stream) if p.size]


def decoded(path: Path, rgb: str = None) -> list:
    """Every frame as a dict: width, height, rotation, format, planes (and the ``rgb`` array when asked).

    Read while the file is open: a decoded frame's buffers belong to the decoder's pool, which
    closing the file frees.
    """
    with av.open(str(path)) as c:
        return [{'width': f.width, 'height': f.height, 'rotation': f.rotation, 'format': f.format.name,
                 'planes': planes(f), 'rgb': f.to_ndarray(format=rgb).copy() if rgb else None}
                for f in c.decode(video=0)]


def planes(frame: av.VideoFrame) -> list:
    """The Y, U, V planes of a planar YUV frame as integer arrays (line padding removed)."""
    dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(bytes(plane), dtype).reshape(plane.height, -1)
        out.append(rows[:, :plane.width].astype(np.int64))
    return out


def network_yuv(net: torch.nn.Module, rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """The reference: the train-form network on the decoded RGB frame, quantized and converted like the pipeline."""
    peak = 65535 if rgb.dtype == np.uint16 else 255
    x = torch.from_numpy(rgb.astype(np.float32) / peak).permute(2, 0, 1)[None]
    with torch.no_grad():
        sr = net.eval()(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    out = np.rint(sr * peak).astype(rgb.dtype)
    frame = av.VideoFrame.from_ndarray(out, format='rgb48le' if peak > 255 else 'rgb24')
    return frame.reformat(format=pix_fmt, dst_colorspace=1, dst_color_range=1, threads=1)


@pytest.fixture(scope='module')
def net() -> RT4KSR:
    return randomize_(RT4KSR(upscale=2), seed=5).eval()


@pytest.fixture(scope='module')
def weights(tmp_path_factory, net) -> Path:
    path = tmp_path_factory.mktemp('weights') / 'x2.pth'
    torch.save({'params': net.state_dict()}, path)
    return path


def test_cli_keeps_streams_timestamps_colour_rotation_and_metadata(tmp_path, weights):
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(len(VFR_PTS), 24, 32, 255, np.uint8), audio=True, subtitles=True, rotation=90)
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'out'), '--weights', str(weights),
                      '--device', 'cpu', '--batch', '3', '--target-fps', '30')
    assert done.returncode == 0, done.stderr[-3000:]
    target = tmp_path / 'out' / 'clip_x2.mkv'
    assert 'FPS end to end' in done.stdout and 'p95' in done.stdout and 'missed the 30 FPS deadline' in done.stdout
    assert sorted(t for t, _ in demuxed(target, 'video')) == [Fraction(p) * TB for p in VFR_PTS]
    assert demuxed(target, 'audio') == demuxed(source, 'audio')  # copied: same bytes, same times
    assert demuxed(target, 'subtitle') == demuxed(source, 'subtitle')
    frames = decoded(target)
    assert len(frames) == len(VFR_PTS) and (frames[0]['width'], frames[0]['height']) == (64, 48)
    assert frames[0]['rotation'] == decoded(source)[0]['rotation'] == 90
    with av.open(str(target)) as out, av.open(str(source)) as src:
        assert out.metadata['title'] == src.metadata['title']
        assert out.streams.audio[0].metadata['language'] == 'fra'
        assert out.streams.subtitles[0].metadata['language'] == 'eng'
        for name in BT709:
            assert getattr(out.streams.video[0].codec_context, name) == BT709[name], name
    assert not [p for p in (tmp_path / 'out').iterdir() if p.name.startswith('.')]  # no partial file left


@pytest.mark.parametrize('codec, crf', [('ffv1', None), ('libx264', 0)])  # x264 --crf 0: its lossless qp 0
def test_10_bit_in_is_10_bit_out_and_matches_the_network_on_16_bit_frames(tmp_path, net, codec, crf):
    source = tmp_path / 'deep.mkv'
    write_clip(source, smooth_frames(3, 16, 20, 65535, np.uint16, seed=1), pix_fmt='yuv420p10le')
    target = tmp_path / 'deep_x2.mkv'
    options = VideoOptions(codec=codec, crf=crf, pix_fmt='yuv420p10le', batch=2)
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, target, options,
                  report=lambda _: None, progress=False)
    outputs = decoded(target)
    assert [f['format'] for f in outputs] == ['yuv420p10le'] * 3
    for src, out in zip(decoded(source, 'rgb48le'), outputs):
        expected = network_yuv(net, src['rgb'], 'yuv420p10le')
        for got, want in zip(out['planes'], planes(expected)):
            assert np.abs(got - want).max() <= 1  # one 10-bit level: float rounding of two computation paths


def test_odd_size_gives_exact_size_and_lossless_x264_gives_the_network_output(tmp_path, net):
    source = tmp_path / 'odd.mp4'
    write_clip(source, smooth_frames(2, 13, 17, 255, np.uint8, seed=2), pix_fmt='yuv444p',
               options={'preset': 'ultrafast', 'qp': '0'})
    target = tmp_path / 'odd_x2.mp4'
    options = VideoOptions(codec='libx264', crf=0, preset='ultrafast', pix_fmt='yuv444p')
    stats, info = upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, target, options,
                                report=lambda _: None, progress=False)
    outputs = decoded(target)
    assert stats.frames == 2 and (outputs[0]['width'], outputs[0]['height']) == (34, 26)
    expected = network_yuv(net, decoded(source, 'rgb24')[0]['rgb'], 'yuv444p')
    for got, want in zip(outputs[0]['planes'], planes(expected)):
        assert np.abs(got - want).max() <= 1


def test_odd_output_for_4_2_0_is_padded_and_said(tmp_path):
    source = tmp_path / 'odd.mkv'
    write_clip(source, smooth_frames(2, 13, 17, 255, np.uint8), pix_fmt='yuv444p')
    said = []
    upscale_video(Upscaler(RT4KSR(upscale=3), InferenceOptions(), 'cpu'), source, tmp_path / 'o.mkv',
                  report=said.append, progress=False)
    assert any('51x39 is padded to 52x40 for yuv420p' in s for s in said), said
    first = decoded(tmp_path / 'o.mkv')[0]
    assert (first['width'], first['height']) == (52, 40)


class Interrupting:
    """An upscaler stand-in that is interrupted (Ctrl-C) on its second batch."""

    def __init__(self, upscaler: Upscaler) -> None:
        self.upscaler, self.calls = upscaler, 0
        self.network, self.scale = upscaler.network, upscaler.scale

    def __call__(self, lq):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.upscaler(lq)


@pytest.mark.parametrize('frames', [False, True])
def test_an_interrupted_run_leaves_no_target(tmp_path, net, frames):
    source = tmp_path / 'clip.mp4'
    write_clip(source, smooth_frames(len(VFR_PTS), 24, 32, 255, np.uint8), audio=True)
    out = tmp_path / 'out'
    target = out / ('clip_x2' if frames else 'clip_x2.mp4')
    with pytest.raises(KeyboardInterrupt):
        upscale_video(Interrupting(Upscaler(net, InferenceOptions(), 'cpu')), source, target, VideoOptions(batch=2),
                      frames=frames, report=lambda _: None, progress=False)
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize('stage', ['rt4ksr-decode', 'rt4ksr-encode'])
def test_an_interrupt_while_a_stage_starts_is_an_interrupt_and_leaves_no_target(tmp_path, net, stage, monkeypatch):
    # a SIGTERM that lands inside Thread.start() (seen in CI) must not turn into "cannot join thread"
    import threading
    from rt4ksr_arch.media import pipeline
    start = threading.Thread.start

    def interrupted_start(thread):
        if thread.name == stage:
            raise KeyboardInterrupt
        start(thread)
    monkeypatch.setattr(pipeline._Stage, 'start', interrupted_start)
    source = tmp_path / 'clip.mp4'
    write_clip(source, smooth_frames(4, 24, 32, 255, np.uint8))
    out = tmp_path / 'out'
    with pytest.raises(KeyboardInterrupt):
        upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, out / 'clip_x2.mp4', VideoOptions(),
                      report=lambda _: None, progress=False)
    assert not out.exists() or not list(out.iterdir())


def test_an_interrupt_between_opening_the_output_and_the_pipeline_leaves_no_target(tmp_path, net, monkeypatch):
    from rt4ksr_arch.media import video

    def interrupted(*args, **kwargs):  # a SIGTERM landing right after the partial file was created
        assert any(tmp_path.joinpath('out').iterdir())
        raise KeyboardInterrupt
    monkeypatch.setattr(video, 'run_pipeline', interrupted)
    source = tmp_path / 'clip.mp4'
    write_clip(source, smooth_frames(2, 24, 32, 255, np.uint8))
    with pytest.raises(KeyboardInterrupt):
        upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, tmp_path / 'out' / 'clip_x2.mp4',
                      VideoOptions(), report=lambda _: None, progress=False)
    assert not list((tmp_path / 'out').iterdir())


def test_frames_folder_to_video_and_video_to_frames(tmp_path, net):
    import cv2
    folder = tmp_path / 'seq'
    folder.mkdir()
    for k, img in enumerate(smooth_frames(3, 12, 16, 255, np.uint8, seed=3)):
        cv2.imwrite(str(folder / f'{k:03d}.png'), img[:, :, ::-1])
    upscaler = Upscaler(net, InferenceOptions(), 'cpu')
    upscale_video(upscaler, folder, tmp_path / 'seq.mp4', VideoOptions(frame_rate=Fraction(12)),
                  report=lambda _: None, progress=False)
    with av.open(str(tmp_path / 'seq.mp4')) as c:
        assert c.streams.video[0].average_rate == 12
    assert [(f['width'], f['height']) for f in decoded(tmp_path / 'seq.mp4')] == [(32, 24)] * 3
    upscale_video(upscaler, tmp_path / 'seq.mp4', tmp_path / 'frames', frames=True, report=lambda _: None,
                  progress=False)
    written = sorted((tmp_path / 'frames').iterdir())
    assert [p.name for p in written] == ['frame_000000.png', 'frame_000001.png', 'frame_000002.png']
    assert cv2.imread(str(written[0])).shape == (48, 64, 3)


def test_stdout_raw_video_and_the_viewer_command(tmp_path, weights, net):
    source = tmp_path / 'clip.mp4'
    write_clip(source, smooth_frames(3, 12, 16, 255, np.uint8))
    done = subprocess.run([sys.executable, '-m', 'rt4ksr_arch', 'upscale', str(source), '-', '--weights',
                           str(weights), '--device', 'cpu'], cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert b'ffplay -f rawvideo -pixel_format rgb24 -video_size 32x24' in done.stderr
    raw = np.frombuffer(done.stdout, np.uint8)
    assert raw.size == 3 * 24 * 32 * 3  # frames only: every message went to stderr
    first = decoded(source, 'rgb24')[0]['rgb']
    with torch.no_grad():
        x = torch.from_numpy(first.astype(np.float32) / 255).permute(2, 0, 1)[None]
        expected = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255
    assert np.abs(raw.reshape(3, 24, 32, 3)[0].astype(np.float64) - expected).max() <= 1.0 + 1e-3


def codec_of(path: Path) -> tuple:
    """(codec name, codec tag, pixel format) of the first video stream."""
    with av.open(str(path)) as c:
        context = c.streams.video[0].codec_context
        return context.name, context.codec_tag, context.pix_fmt


@pytest.mark.parametrize('suffix, codec', [('.ts', 'h264'), ('.m2ts', 'h264'), ('.webm', 'vp9'), ('.y4m', 'rawvideo')])
def test_default_codec_is_one_the_output_container_holds(tmp_path, net, suffix, codec):
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(2, 12, 16, 255, np.uint8))
    target = tmp_path / f'out{suffix}'
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, target, report=lambda _: None, progress=False)
    assert codec_of(target)[0] == codec and len(decoded(target)) == 2


def test_text_subtitles_are_converted_to_the_containers_text_codec_both_ways(tmp_path, net):
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(len(VFR_PTS), 12, 16, 255, np.uint8), subtitles=True)
    upscaler = Upscaler(net, InferenceOptions(), 'cpu')
    said = []
    upscale_video(upscaler, source, tmp_path / 'a.mp4', report=said.append, progress=False)  # SubRip -> mov_text
    upscale_video(upscaler, tmp_path / 'a.mp4', tmp_path / 'b.mkv', report=said.append, progress=False)  # and back
    assert any('converted to mov_text' in s for s in said), said

    def texts(path: Path) -> list:
        with av.open(str(path)) as c:
            stream = c.streams.subtitles[0]
            return stream.codec_context.name, [(p.pts * p.time_base, ''.join(
                getattr(r, 'dialogue', b'').decode() or getattr(r, 'text', b'').decode() for r in s.rects))
                for p in c.demux(stream) if p.size for s in [stream.codec_context.decode2(p)] if s]

    assert texts(tmp_path / 'a.mp4')[0] == 'mov_text' and texts(tmp_path / 'b.mkv')[0] != 'mov_text'
    for path in (tmp_path / 'a.mp4', tmp_path / 'b.mkv'):
        got = texts(path)[1]
        assert [t for t, _ in got] == [Fraction(50, 1000), Fraction(160, 1000)]
        assert 'Hello' in got[0][1] and 'World' in got[1][1]


def test_a_stream_the_container_cannot_carry_is_one_error_line_naming_drop(tmp_path, weights):
    source = tmp_path / 'clip.ts'  # AAC in MPEG-TS is ADTS, which AVI does not take
    write_clip(source, smooth_frames(2, 12, 16, 255, np.uint8), audio=True)
    refused = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'o.avi'), '--weights',
                         str(weights), '--device', 'cpu')
    assert refused.returncode == 2 and refused.stderr.count('error:') == 1, refused.stderr
    assert 'Traceback' not in refused.stderr and '--drop 1' in refused.stderr and 'rt4ksr_mux' not in refused.stderr
    assert not (tmp_path / 'o.avi').exists()
    audio_codec = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'o.mkv'), '--weights',
                             str(weights), '--device', 'cpu', '--codec', 'aac')
    assert audio_codec.returncode == 2 and 'Traceback' not in audio_codec.stderr
    assert "error: --codec 'aac' is not a video encoder" in audio_codec.stderr
    dropped = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'o.avi'), '--weights',
                         str(weights), '--device', 'cpu', '--drop', 'audio')
    assert dropped.returncode == 0, dropped.stderr
    with av.open(str(tmp_path / 'o.avi')) as c:
        assert [s.type for s in c.streams] == ['video']


def test_truncated_source_warns_naming_frames_read_and_exits_1(tmp_path, weights):
    source = tmp_path / 'clip.mp4'
    frames = smooth_frames(len(VFR_PTS), 12, 16, 255, np.uint8)
    with av.open(str(source), 'w', options={'movflags': 'faststart'}) as out:  # index first: a cut file still opens
        video = out.add_stream('libx264', options={'preset': 'ultrafast'})
        video.width, video.height, video.pix_fmt = 16, 12, 'yuv420p'
        video.time_base = video.codec_context.time_base = TB
        for pts, array in zip(VFR_PTS, frames):
            frame = av.VideoFrame.from_ndarray(array, format='rgb24')
            frame.pts, frame.time_base = pts, TB
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    with av.open(str(source)) as c:
        cut = [p.pos for p in c.demux(video=0) if p.size][4]  # the file ends before the fifth frame
    source.write_bytes(source.read_bytes()[:cut])
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(tmp_path / 'o.mkv'), '--weights',
                      str(weights), '--device', 'cpu')
    read = len(decoded(tmp_path / 'o.mkv'))
    assert done.returncode == 1 and 0 < read < len(VFR_PTS), done.stderr
    assert f'{read} of {len(VFR_PTS)} frames' in done.stderr and 'warning:' in done.stderr


def test_colour_tags_rgb_encoders_and_rgb_sources(tmp_path, net):
    import cv2
    upscaler = Upscaler(net, InferenceOptions(), 'cpu')
    source = tmp_path / 'clip.mkv'  # tagged BT.709: an RGB encoder must not be tagged with its matrix
    write_clip(source, smooth_frames(2, 12, 16, 255, np.uint8, seed=4), pix_fmt='yuv444p',
               options={'preset': 'ultrafast', 'qp': '0'})
    upscale_video(upscaler, source, tmp_path / 'rgb.mkv', VideoOptions(codec='libx264rgb', crf=0),
                  report=lambda _: None, progress=False)
    with av.open(str(tmp_path / 'rgb.mkv')) as c:
        assert c.streams.video[0].codec_context.colorspace == 0  # AVCOL_SPC_RGB
        got = next(c.decode(video=0)).to_ndarray(format='rgb24').astype(np.float64)
    with torch.no_grad():
        src = decoded(source, 'rgb24')[0]['rgb']
        want = net(torch.from_numpy(src / 255.).float().permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0)
    assert np.abs(got - want.numpy() * 255).max() <= 1.0 + 1e-3  # lossless RGB: the network's output

    folder = tmp_path / 'seq'  # RGB images: written BT.709 limited range, and tagged so
    folder.mkdir()
    image = smooth_frames(1, 12, 16, 255, np.uint8, seed=5)[0]
    cv2.imwrite(str(folder / '0.png'), image[:, :, ::-1])
    upscale_video(upscaler, folder, tmp_path / 'seq.mkv', VideoOptions(codec='libx264', crf=0, pix_fmt='yuv444p'),
                  report=lambda _: None, progress=False)
    with av.open(str(tmp_path / 'seq.mkv')) as c:
        context = c.streams.video[0].codec_context
        assert {name: getattr(context, name) for name in BT709} == BT709
        got = planes(next(c.decode(video=0)))
    with torch.no_grad():
        sr = net(torch.from_numpy(image / 255.).float().permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0)
    y = 16 + 219 * (sr.double().numpy() * [0.2126, 0.7152, 0.0722]).sum(-1)  # BT.709 luma, limited range
    assert np.abs(got[0] - y).max() <= 1.0 + 1e-3


def test_ffv1_keeps_odd_sizes_exactly(tmp_path):
    source = tmp_path / 'odd.mkv'
    write_clip(source, smooth_frames(2, 13, 17, 255, np.uint8), pix_fmt='yuv444p')
    said = []
    upscale_video(Upscaler(RT4KSR(upscale=3), InferenceOptions(), 'cpu'), source, tmp_path / 'o.mkv',
                  VideoOptions(codec='ffv1'), report=said.append, progress=False)
    first = decoded(tmp_path / 'o.mkv')[0]
    assert (first['width'], first['height']) == (51, 39) and not any('padded' in s for s in said)


def sar(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        return c.streams.video[0].sample_aspect_ratio


def test_aspect_ratio_dispositions_chapters_and_attachments_are_kept(tmp_path, net):
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(len(VFR_PTS), 12, 16, 255, np.uint8), subtitles=True, sar=Fraction(32, 27))
    with av.open(str(source)) as src, av.open(str(tmp_path / 'full.mkv'), 'w') as out:  # remux with the extras
        video = out.add_stream_from_template(src.streams.video[0])
        subs = out.add_stream_from_template(src.streams.subtitles[0])
        subs.disposition = av.stream.Disposition.forced
        out.add_attachment('font.ttf', 'font/ttf', b'not really a font')
        out.set_chapters([{'id': 1, 'start': 0, 'end': 150, 'time_base': TB, 'metadata': {'title': 'one'}},
                          {'id': 2, 'start': 150, 'end': 333, 'time_base': TB, 'metadata': {'title': 'two'}}])
        for packet in src.demux():
            if packet.size:
                packet.stream = video if packet.stream.type == 'video' else subs
                out.mux(packet)
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), tmp_path / 'full.mkv', tmp_path / 'o.mkv',
                  report=lambda _: None, progress=False)
    with av.open(str(tmp_path / 'o.mkv')) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(32, 27) == sar(tmp_path / 'full.mkv')
        assert c.streams.subtitles[0].disposition & av.stream.Disposition.forced
        assert [a.name for a in c.streams.attachments] == ['font.ttf']
        assert [ch['metadata']['title'] for ch in c.chapters()] == ['one', 'two']
    said = []
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), tmp_path / 'full.mkv', tmp_path / 'o.mp4',
                  report=said.append, progress=False)
    with av.open(str(tmp_path / 'o.mp4')) as c:
        assert [ch['metadata']['title'] for ch in c.chapters()] == ['one', 'two']
    assert any('attachment(s) (font.ttf) not kept' in s for s in said), said


def test_hdr10_source_gives_hevc_main10_tagged_hvc1_with_its_mastering_metadata(tmp_path, net):
    source = tmp_path / 'hdr.mkv'
    master = 'G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)'
    # x265 10-bit corrupted the heap on pictures under 64x64 (FFmpeg 8.1 wheel): 64x64 and up
    write_clip(source, smooth_frames(2, 64, 64, 65535, np.uint16), codec='libx265', pix_fmt='yuv420p10le',
               options={'preset': 'ultrafast', 'x265-params': f'log-level=error:hdr10=1:master-display={master}:'
                        'max-cll=1000,400'})
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, tmp_path / 'o.mp4', report=lambda _: None,
                  progress=False)
    assert codec_of(tmp_path / 'o.mp4') == ('hevc', 'hvc1', 'yuv420p10le')

    def side_data(path: Path) -> dict:
        kinds = (av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA, av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL)
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))  # kept alive: its side data points into it
            return {d.type: bytes(d) for d in frame.side_data if d.type in kinds}

    assert len(side_data(source)) == 2 and side_data(tmp_path / 'o.mp4') == side_data(source)


def test_encoder_settings_are_checked_and_named():
    with pytest.raises(OptionError, match="'bogus' is not a preset of libx264"):
        choose_encoder('h264', 8, False, preset='bogus')
    with pytest.raises(OptionError, match='libx264 has no option foo'):
        choose_encoder('h264', 8, False, extra={'foo': '1'})
    with pytest.raises(OptionError, match='lossless') as refused:
        choose_encoder('ffv1', 8, False, crf=3)
    assert refused.value.field == 'crf'
    lossless = choose_encoder('h264', 10, False, crf=0).options
    assert lossless['qp'] == '0' and 'crf' not in lossless
    assert 'crf' not in choose_encoder('h264', 8, False, extra={'qp': '4'}).options  # the user's qp is not overridden


def test_inputs_that_would_be_ignored_are_refused(tmp_path, net):
    import cv2
    upscaler = Upscaler(net, InferenceOptions(), 'cpu')
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(2, 12, 16, 255, np.uint8))
    with pytest.raises(OptionError, match='keeps its own timestamps'):
        upscale_video(upscaler, source, tmp_path / 'o.mkv', VideoOptions(frame_rate=Fraction(30)), progress=False)
    folder = tmp_path / 'mixed'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.zeros((12, 16, 3), np.uint8))
    (folder / 'clip.mkv').write_bytes(source.read_bytes())
    with pytest.raises(ImageReadError, match=r'holds video files \(clip.mkv\)'):
        upscale_video(upscaler, folder, tmp_path / 'o.mp4', progress=False)
    assert not (tmp_path / 'o.mkv').exists() and not (tmp_path / 'o.mp4').exists()
    alpha = tmp_path / 'alpha.mkv'
    write_clip(alpha, smooth_frames(2, 12, 16, 255, np.uint8), codec='ffv1', pix_fmt='bgra', options={})
    said = []
    upscale_video(upscaler, alpha, tmp_path / 'a.mkv', VideoOptions(codec='ffv1', pix_fmt='bgra'),
                  report=said.append, progress=False)
    assert any("alpha channel is not in the output" in s for s in said), said
    assert any('bgra has an alpha channel: written opaque' in s for s in said), said


def test_frames_go_into_a_named_folder_upright_and_video_flags_are_refused(tmp_path, weights, net):
    import cv2
    source = tmp_path / 'clip.mp4'
    write_clip(source, smooth_frames(2, 24, 32, 255, np.uint8, seed=6), rotation=90, pix_fmt='yuv444p')
    results = tmp_path / 'results'  # does not exist yet: the same names as when it does
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), str(results), '--frames', '--weights',
                      str(weights), '--device', 'cpu')
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'turned upright (90 degrees' in done.stdout
    assert sorted(p.name for p in (results / 'clip_x2').iterdir()) == ['frame_000000.png', 'frame_000001.png']
    first = cv2.imread(str(results / 'clip_x2' / 'frame_000000.png'))[:, :, ::-1].astype(np.float64)
    with torch.no_grad():
        src = decoded(source, 'rgb24')[0]['rgb']
        sr = net(torch.from_numpy(src / 255.).float().permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0) * 255
    # shown as players show it: FFmpeg's display matrix 90 turns the picture counterclockwise (ffmpeg's own
    # autorotation agrees), i.e. numpy's rot90 once
    assert first.shape == (64, 48, 3) and np.abs(first - np.rot90(sr.numpy(), 1)).max() <= 1.0 + 1e-3
    for flags, wrong in ((['--frames', str(tmp_path / 'x.mov')], 'names a video'),
                         (['--frames', str(tmp_path / 'f'), '--codec', 'h265'], '--codec does not apply')):
        refused = run_module('-m', 'rt4ksr_arch', 'upscale', str(source), *flags[1:], flags[0], '--weights',
                             str(weights), '--device', 'cpu')
        assert refused.returncode == 2 and wrong in refused.stderr, refused.stderr
    assert not (tmp_path / 'x.mov').exists() and not (tmp_path / 'f').exists()


def test_sigterm_leaves_no_partial_file(tmp_path, weights):
    import signal
    import time
    source = tmp_path / 'clip.mkv'
    with av.open(str(source), 'w') as out:
        video = out.add_stream('libx264', rate=25, options={'preset': 'ultrafast'})
        video.width, video.height, video.pix_fmt = 128, 96, 'yuv420p'
        for frame in smooth_frames(60, 96, 128, 255, np.uint8):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')))
        out.mux(video.encode(None))
    out_dir = tmp_path / 'out'
    run = subprocess.Popen([sys.executable, '-m', 'rt4ksr_arch', 'upscale', str(source), str(out_dir), '--weights',
                            str(weights), '--device', 'cpu', '--self-ensemble'], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out_dir.exists() and any(out_dir.iterdir())) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGTERM)  # while the hidden partial file is being written
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM and 'terminated' in stderr, stderr[-3000:]
    assert not list(out_dir.iterdir())


def test_realtime_choice_counts_decode_and_encode_and_skips_tiles_as_large_as_the_frame(tmp_path, net):
    from rt4ksr_arch.media import media_ms_per_frame, pick_realtime
    from rt4ksr_arch.media.realtime import candidates
    assert candidates(torch.device('cpu'), 180, 320) == [('fp32', None, 1), ('bf16', None, 1)]
    assert ('fp32', 512, 1) in candidates(torch.device('cpu'), 1080, 1920)
    cpu = torch.device('cpu')
    easy = pick_realtime(net, InferenceOptions(), cpu, 12, 16, target_fps=1)  # 850 ms for a 12x16 frame
    assert easy.fits and easy.options.precision == 'fp32' and easy.frame_ms == easy.ms_per_frame
    # the same network, but decode + encode alone take the budget: it cannot fit, and says so
    busy = pick_realtime(net, InferenceOptions(), cpu, 12, 16, target_fps=1, media_ms=900)
    assert not busy.fits and busy.frame_ms == busy.ms_per_frame + 900 and 'does NOT fit' in busy.describe()
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(3, 12, 16, 255, np.uint8))
    assert 0 < media_ms_per_frame(source, 'out.mkv', scale=2) and 0 < media_ms_per_frame(source, '-', scale=2)


def test_a_cut_matroska_file_without_a_frame_count_is_found_by_its_demuxer(tmp_path, net):
    source = tmp_path / 'clip.mkv'
    write_clip(source, smooth_frames(len(VFR_PTS), 12, 16, 255, np.uint8))
    with av.open(str(source)) as c:
        cut = [p.pos for p in c.demux(video=0) if p.size][4] + 5  # inside the fifth frame's block
    source.write_bytes(source.read_bytes()[:cut])
    stats, _ = upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, tmp_path / 'o.mkv',
                             report=lambda _: None, progress=False)
    assert stats.frames == 4 and stats.shortfall and '4 frames were decoded' in stats.shortfall
    complete = tmp_path / 'whole.mkv'
    write_clip(complete, smooth_frames(len(VFR_PTS), 12, 16, 255, np.uint8))
    stats, _ = upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), complete, tmp_path / 'w.mkv',
                             report=lambda _: None, progress=False)
    assert stats.frames == len(VFR_PTS) and stats.shortfall is None


@pytest.mark.parametrize('codec, suffix', [('ffv1', '.mkv'), ('libvpx-vp9', '.webm'), ('libx265', '.mkv')])
def test_aspect_ratio_is_kept_or_its_loss_is_said(tmp_path, net, codec, suffix):
    source = tmp_path / 'sar.mp4'
    write_clip(source, smooth_frames(2, 32, 32, 255, np.uint8), sar=Fraction(32, 27))  # x265: >= 64 wide out
    target = tmp_path / f'o{suffix}'
    said = []
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, target, VideoOptions(codec=codec),
                  report=said.append, progress=False)
    assert sar(target) == Fraction(32, 27) or any('sample aspect ratio 32:27' in s for s in said), said


def test_a_numbered_frame_folder_is_in_number_order_and_sizes_are_checked_first(tmp_path, net):
    import cv2
    folder = tmp_path / 'seq'
    folder.mkdir()
    for k in (1, 2, 3, 9, 10, 11):  # a text sort gives 1, 10, 11, 2, 3, 9
        cv2.imwrite(str(folder / f'frame_{k}.png'), np.full((12, 16, 3), 20 * k, np.uint8))
    from rt4ksr_arch.media import FrameFolderSource
    source = FrameFolderSource(folder, Fraction(25))
    assert [k for k, frame in zip((1, 2, 3, 9, 10, 11), source.items()) if frame.array.mean() != 20 * k] == []
    cv2.imwrite(str(folder / 'frame_12.png'), np.full((10, 16, 3), 0, np.uint8))
    with pytest.raises(ImageReadError, match='frame_12.png is 16x10'):
        upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), folder, tmp_path / 'g', frames=True,
                      report=lambda _: None, progress=False)
    assert not (tmp_path / 'g').exists()


def test_a_video_is_known_by_its_content_and_a_pipe_reader_that_quits_ends_the_run(tmp_path, weights):
    from PIL import Image
    from rt4ksr_arch.media import is_video_file
    clip = tmp_path / 'clip.mp4'
    write_clip(clip, smooth_frames(3, 12, 16, 255, np.uint8))
    (tmp_path / 'recording').write_bytes(clip.read_bytes())  # a name FFmpeg alone recognises
    frames = [Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)) for k in range(3)]
    frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / 'still.gif')
    (tmp_path / 'text.dat').write_text('not a video')
    assert is_video_file(tmp_path / 'recording') and is_video_file(tmp_path / 'anim.gif')
    assert not is_video_file(tmp_path / 'still.gif') and not is_video_file(tmp_path / 'text.dat')
    done = run_module('-m', 'rt4ksr_arch', 'upscale', str(tmp_path / 'recording'), str(tmp_path / 'out'),
                      '--weights', str(weights), '--device', 'cpu')
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(decoded(tmp_path / 'out' / 'recording_x2.mkv')) == 3
    done = run_module('-m', 'rt4ksr_arch', 'upscale', '-', str(tmp_path / 'o.mkv'), '--weights', str(weights))
    assert done.returncode == 2 and 'stdin' in done.stderr and 'Traceback' not in done.stderr
    big = tmp_path / 'big.mp4'  # frames larger than the pipe's buffer
    write_clip(big, smooth_frames(6, 96, 128, 255, np.uint8))
    quitter = subprocess.run(f'{sys.executable} -m rt4ksr_arch upscale {big} - --weights {weights} --device cpu '
                             '| head -c 100 > /dev/null', shell=True, cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert 'stopped, the reader of the pipe closed it' in quitter.stderr and '0 failed' in quitter.stderr
    assert 'Broken pipe' not in quitter.stderr and 'Traceback' not in quitter.stderr


def test_interlaced_sources_and_extra_video_streams_are_said(tmp_path, net):
    source = tmp_path / 'two.mkv'
    frames = smooth_frames(2, 12, 16, 255, np.uint8)
    with av.open(str(source), 'w') as out:
        first = out.add_stream('libx264', rate=25, options={'preset': 'ultrafast', 'flags': '+ildct+ilme'})
        second = out.add_stream('libx264', rate=25, options={'preset': 'ultrafast'})
        for stream in (first, second):
            stream.width, stream.height, stream.pix_fmt = 16, 12, 'yuv420p'
        for k, array in enumerate(frames):
            for stream in (first, second):
                frame = av.VideoFrame.from_ndarray(array, format='rgb24').reformat(format='yuv420p')
                frame.pts = k
                out.mux(stream.encode(frame))
        for stream in (first, second):
            out.mux(stream.encode(None))
    said = []
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, tmp_path / 'o.mkv', report=said.append,
                  progress=False)
    assert any('interlaced' in s for s in said), said
    assert any('video #1' in s and 'not kept' in s for s in said), said
