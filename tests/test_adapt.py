"""rt4ksr adapt: the held-out split, end to end on tiny images, resume, keeping the given weights."""
import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rt4ksr_arch import RT4KSR, load_model, save_checkpoint
from rt4ksr_arch.adapt import AdaptOptions, adapt, evenly_spaced, split_frames
from rt4ksr_arch.cli.main import main
from rt4ksr_arch.errors import DatasetError, OptionError
from rt4ksr_arch.ops.degradations import degrade, parse_degradation
from tests.helpers import randomize_, run_module, shared


def smooth_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """An 8-bit RGB image with structure at several scales (upsampled noise)."""
    gen = np.random.default_rng(seed)
    coarse = cv2.resize(gen.integers(0, 256, (6, 8, 3), dtype=np.uint8), (width, height),
                        interpolation=cv2.INTER_CUBIC).astype(np.int16)
    fine = gen.integers(-20, 21, (height, width, 3))
    return np.clip(coarse + fine, 0, 255).astype(np.uint8)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / 'mine'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i}.png'), smooth_image(i)[..., ::-1])
    return folder


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    """A small random x2 RT4KSR (C=16, one block), stored with its config."""
    torch.manual_seed(0)
    net = randomize_(RT4KSR(num_feat=16, num_block=1), seed=1)
    path = tmp_path / 'tiny.pth'
    save_checkpoint(str(path), net.config, params=net.state_dict())
    return path


# ---------------------------------------------------------------------------------------------- the split
def test_split_holds_out_the_right_part_and_makes_its_lr_alone():
    frame = smooth_image(4, 41, 74)
    split = split_frames([frame], 2, AdaptOptions(patch=16, holdout=0.25), parse_degradation('bicubic'))
    assert np.array_equal(split.train[0], frame[:, :56])  # the left 75% (55.5 px, rounded to even)
    held = split.held_out_hr[0][0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.rint(held * 255).astype(np.uint8), frame[:40, 56:74])  # the rest, mod-cropped
    assert torch.equal(split.held_out_lr[0], degrade(split.held_out_hr[0], 2, parse_degradation('bicubic')))
    with pytest.raises(DatasetError, match='no frame is large enough: frame 0 is 74x41: its train part'):
        split_frames([frame], 2, AdaptOptions(patch=48), parse_degradation('bicubic'))
    # a frame too small among usable ones is left out, named, and the held-out part is the others'
    mixed = split_frames([frame, smooth_image(5, 12, 90), frame], 2, AdaptOptions(patch=16),
                         parse_degradation('bicubic'), names=['a', 'thumb', 'c'])
    assert len(mixed.train) == len(mixed.held_out_hr) == 2 and len(mixed.skipped) == 1
    assert mixed.skipped == ['thumb is 90x12: its train part (68x12) cannot hold a 16x16 crop (lower --patch); it is '
                             'under 16 pixels high']
    with pytest.raises(DatasetError, match=r'held-out part \(4x41\) is under 16 pixels wide \(raise --holdout\)'):
        split_frames([frame], 2, AdaptOptions(patch=16, holdout=0.05), parse_degradation('bicubic'))
    with pytest.raises(DatasetError, match='no frames'):
        split_frames([], 2, AdaptOptions(), parse_degradation('bicubic'))


# ---------------------------------------------------------------------------------------------- end to end
def test_adapt_end_to_end_then_upscale_uses_the_result(tmp_path, image_folder, tiny_weights):
    out = tmp_path / 'adapted.pth'
    done = run_module('-m', 'rt4ksr_arch', 'adapt', str(image_folder), '--weights', str(tiny_weights), '--out',
                      str(out), '--iters', '6', '--eval-every', '3', '--batch', '4', '--patch', '16', '--holdout',
                      '0.5', '--lr', '1e-3', '--warmup', '2', '--device', 'cpu')
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    before = float(re.search(r'held-out Y-PSNR before: ([\d.]+) dB', log).group(1))
    assert 'adapt: 3 frames, trained on the left 50% of each, 3 held-out regions' in log and str(out) in log
    net, weights = load_model(str(out))
    assert weights.config == load_model(str(tiny_weights))[1].config  # the network config travels
    curves = Path(f'{out}.adapt') / 'curves.csv'
    rows = [r.split(',') for r in curves.read_text().splitlines()[1:] if r.startswith('val,')]
    assert [int(r[3]) for r in rows] == [0, 3, 6] and float(rows[0][4]) == pytest.approx(before, abs=5e-4)
    assert cv2.imread(str(curves.with_name('curves.png'))) is not None
    upscaled = run_module('-m', 'rt4ksr_arch', 'upscale', str(image_folder / '0.png'), str(tmp_path / 'up'),
                          '--weights', str(out), '--device', 'cpu')
    assert upscaled.returncode == 0, upscaled.stderr[-2000:]
    assert cv2.imread(str(tmp_path / 'up' / '0_x2.png')).shape == (96, 128, 3)


@pytest.mark.parametrize('count', [1, 2, 3, 5])
def test_evenly_spaced_spreads_over_a_sequence_of_unknown_length(count):
    for length in range(0, 40):
        picked = [index for index, item in evenly_spaced(iter(range(length)), count)]
        assert picked == sorted(set(picked)) and len(picked) == min(count, length)
        if length:
            assert picked[0] == 0 and all(i in range(length) for i in picked)
        if length > count > 1:  # spread over the sequence, not bunched at its start (brute force: any gap)
            assert picked[-1] >= length // 2 and max(b - a for a, b in zip(picked, picked[1:])) <= 3 * length // count


def test_adapt_reads_a_video_file_through_the_media_layer(tmp_path, tiny_weights):
    """A 9-frame H.264 clip made here with PyAV; --max-frames 3 takes frames 0, 4 and 8 and trains on them."""
    import av
    clip = tmp_path / 'clip.mp4'
    with av.open(str(clip), 'w') as out:
        stream = out.add_stream('libx264', rate=10, options={'preset': 'ultrafast', 'crf': '10'})
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
        for i in range(9):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(smooth_image(i), format='rgb24')))
        out.mux(stream.encode(None))
    from rt4ksr_arch.cli.adapt import read_frames
    frames, names = read_frames(str(clip), max_frames=3)
    assert names == ['clip.mp4 frame 0', 'clip.mp4 frame 4', 'clip.mp4 frame 8']
    for frame, seed in zip(frames, (0, 4, 8)):  # each is the frame it names (lossy codec: close, not equal)
        errors = {s: np.abs(frame.astype(int) - smooth_image(s)).mean() for s in range(9)}
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and min(errors, key=errors.get) == seed
    out = tmp_path / 'video.pth'
    done = run_module('-m', 'rt4ksr_arch', 'adapt', str(clip), '--max-frames', '3', '--weights', str(tiny_weights),
                      '--out', str(out), '--iters', '2', '--warmup', '0', '--eval-every', '2', '--batch', '2',
                      '--patch', '16', '--holdout', '0.5', '--device', 'cpu')
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'adapt: 3 frames' in done.stdout and out.is_file()


def test_the_given_weights_are_kept_when_adapting_does_not_help(tmp_path, image_folder, tiny_weights):
    out = tmp_path / 'kept.pth'
    done = run_module('-m', 'rt4ksr_arch', 'adapt', str(image_folder), '--weights', str(tiny_weights), '--out',
                      str(out), '--iters', '2', '--warmup', '1', '--eval-every', '2', '--batch', '2', '--patch', '16',
                      '--holdout', '0.5', '--min-gain', '100', '--device', 'cpu')
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'wrote the GIVEN weights' in done.stdout and 'less than --min-gain 100 dB' in done.stdout
    given = torch.load(tiny_weights, weights_only=True)['params']
    written = torch.load(out, weights_only=True)['params']
    assert all(torch.equal(given[k], written[k]) for k in given)


def test_an_interrupted_adapt_continues_where_it_stopped(tmp_path, image_folder, tiny_weights, monkeypatch):
    import rt4ksr_arch.adapt as module
    frames = [smooth_image(i) for i in range(3)]
    opts = AdaptOptions(iters=6, eval_every=2, batch=2, patch=16, holdout=0.5, lr=1e-3, warmup=2, patience=10)
    whole = adapt(frames, str(tiny_weights), str(tmp_path / 'whole.pth'), str(tmp_path / 'whole'), opts)
    calls, measure = [], module.Session.measure

    def interrupted(session):
        calls.append(1)
        if len(calls) == 3:  # before, iteration 2, then stop while measuring iteration 4
            raise KeyboardInterrupt
        return measure(session)

    monkeypatch.setattr(module.Session, 'measure', interrupted)
    said = []
    with pytest.raises(KeyboardInterrupt):
        adapt(frames, str(tiny_weights), str(tmp_path / 'part.pth'), str(tmp_path / 'part'), opts,
              report=said.append)
    assert 'stopped at iteration 4: ' in said[-1] and 'keeps the state of iteration 2' in said[-1]
    monkeypatch.setattr(module.Session, 'measure', measure)
    messages = []
    resumed = adapt(frames, str(tiny_weights), str(tmp_path / 'part.pth'), str(tmp_path / 'part'), opts,
                    report=messages.append)
    assert any('from iteration 2' in m for m in messages)
    assert resumed.history == whole.history and resumed.adapted == whole.adapted
    a = torch.load(tmp_path / 'whole.pth', weights_only=True)['params']
    b = torch.load(tmp_path / 'part.pth', weights_only=True)['params']
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(OptionError, match=r'holds an adapt run with other settings \(iters: 6 -> 7\)'):
        adapt(frames, str(tiny_weights), str(tmp_path / 'other.pth'), str(tmp_path / 'part'),
              dataclasses.replace(opts, iters=7))


@pytest.mark.parametrize('extra, message', [
    (['--degradation', 'jpeg:0'], '--degradation must be bicubic, ntire23 or jpeg:Q'),
    (['--holdout', '1.5'], '--holdout must be between 0 and 1'),
    (['--patch', '200'], 'no frame is large enough: 0.png is 64x48: its train part (48x48) cannot hold a 200x200'),
    (['--iters', '10', '--warmup', '10'], '--warmup must be below the number of iterations (10 >= 10)'),
    (['--out', 'x.onnx'], '--out must end in .pth or .safetensors'),
    (['--out', 'WEIGHTS'], '--out is the --weights file'),
    (['--patch', '15'], "--patch must be a multiple of the network's scale 2"),
    (['--min-gain', '-0.5'], '--min-gain must be >= 0 dB'),
    (['--work', 'FILE'], 'is a file, not a folder; give --work a folder'),
    (['clip.mp4'], 'cannot open video'),
    (['notes.txt'], 'is neither an image nor a video'),
])
def test_bad_inputs_name_the_problem(tmp_path, image_folder, tiny_weights, capsys, extra, message):
    source = image_folder
    if extra in (['clip.mp4'], ['notes.txt']):
        source, extra = tmp_path / extra[0], []
        source.write_bytes(b'\x00' * 16)
    args = ['adapt', str(source), '--weights', str(tiny_weights), '--out', str(tmp_path / 'o.pth'), '--device', 'cpu']
    args += [str(tiny_weights) if a == 'WEIGHTS' else str(tiny_weights) if a == 'FILE' else a for a in extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err and not (tmp_path / 'o.pth').exists()


@pytest.mark.slow
def test_adapting_the_released_x2_weights_to_the_1080p_photos_gains_on_held_out_halves(tmp_path):
    """README, "Adapt to your content": left halves train, right halves are held out (about 3 CPU minutes)."""
    from rt4ksr_arch.cli.adapt import read_frames
    frames, names = read_frames(str(shared('data', 'UHD_1080p', 'crops_1920x1080')))
    weights = shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth')
    result = adapt(frames, str(weights), str(tmp_path / 'adapted.pth'), str(tmp_path / 'work'),
                   AdaptOptions(holdout=0.5), names=names)
    assert result.adapted and result.gain >= 0.3, (result.before, result.after)
    net, _ = load_model(str(tmp_path / 'adapted.pth'))
    assert net.config == load_model(str(weights))[0].config


def test_unreadable_and_too_small_images_in_a_folder_are_skipped_and_named(tmp_path, image_folder, tiny_weights):
    (image_folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    cv2.imwrite(str(image_folder / 'icon.png'), smooth_image(9, 12, 12))
    out = tmp_path / 'o.pth'
    done = run_module('-m', 'rt4ksr_arch', 'adapt', str(image_folder), '--weights', str(tiny_weights), '--out',
                      str(out), '--iters', '2', '--warmup', '0', '--eval-every', '2', '--batch', '2', '--patch', '16',
                      '--holdout', '0.5', '--device', 'cpu')
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r'warning: skipped broken\.png: ', done.stderr)
    assert 'warning: skipped icon.png is 12x12: its train part (6x12) cannot hold a 16x16 crop' in done.stdout
    assert 'adapt: 3 frames (1 too small, skipped)' in done.stdout
    assert out.is_file()
    only_broken = tmp_path / 'broken'
    only_broken.mkdir()
    (only_broken / 'x.png').write_bytes(b'not an image')
    refused = run_module('-m', 'rt4ksr_arch', 'adapt', str(only_broken), '--weights', str(tiny_weights), '--out',
                         str(tmp_path / 'p.pth'), '--device', 'cpu')
    assert refused.returncode == 2 and 'holds no readable image' in refused.stderr, refused.stderr


def test_an_input_that_does_not_exist_is_named(tmp_path, capsys, tiny_weights):
    status = main(['adapt', str(tmp_path / 'nothing.png'), '--weights', str(tiny_weights), '--out',
                   str(tmp_path / 'o.pth')])
    err = capsys.readouterr().err
    assert status == 2 and 'nothing.png does not exist' in err and err.count('\n') == 1
