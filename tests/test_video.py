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
from rt4ksr_arch.media import VideoOptions, upscale_video
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
               subtitles: bool = False, rotation: int = 0, options: dict = None) -> None:
    """A clip with ``frames`` at VFR_PTS (ms), BT.709 tags, and optionally an AAC tone and SubRip subtitles."""
    out = av.open(str(path), 'w')
    out.metadata['title'] = 'rt4ksr test clip'
    video = out.add_stream(codec, options=options or {'preset': 'ultrafast'})
    video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
    video.time_base = video.codec_context.time_base = TB
    for name, value in BT709.items():
        setattr(video.codec_context, name, value)
    if rotation:
        video.set_display_rotation(rotation)
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


def test_10_bit_in_is_10_bit_out_and_matches_the_network_on_16_bit_frames(tmp_path, net):
    source = tmp_path / 'deep.mkv'
    write_clip(source, smooth_frames(3, 16, 20, 65535, np.uint16, seed=1), pix_fmt='yuv420p10le')
    target = tmp_path / 'deep_x2.mkv'
    upscale_video(Upscaler(net, InferenceOptions(), 'cpu'), source, target, VideoOptions(codec='ffv1', batch=2),
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
