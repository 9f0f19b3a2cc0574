"""Field failures replayed from users' reports, each fixed as a kind; every test makes its own inputs."""
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from rt4ksr_arch import RT4KSR, save_checkpoint
from rt4ksr_arch.archs.linear_start import linear_start_
from rt4ksr_arch.data.image_io import decode_unchanged, list_images
from rt4ksr_arch.evaluation import figure_row
from rt4ksr_arch.ops.bicubic import imresize
from tests.test_cli import run
from tests.test_video import smooth_frames, write_clip


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> Path:
    """A small network that upscales like a good linear filter (keeps intensities, unlike random weights)."""
    net = RT4KSR(num_feat=16, num_block=1)
    gen = torch.Generator().manual_seed(0)
    hr = F.interpolate(torch.rand(8, 3, 6, 6, generator=gen), size=(48, 48), mode='bicubic').clamp(0, 1)
    linear_start_(net, imresize(hr, 0.5), hr)
    path = tmp_path_factory.mktemp('w') / 'x2.pth'
    save_checkpoint(str(path), net.config, params=net.state_dict())
    return path


def exif_bytes(stored_rgb: np.ndarray, orientation: int, fmt: str) -> bytes:
    image = Image.fromarray(stored_rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif, **({'quality': 95} if fmt == 'JPEG' else {}))
    return buffer.getvalue()


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_viewers_do(orientation):
    stored = np.random.default_rng(orientation).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    data = exif_bytes(stored, orientation, 'PNG')
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))[:, :, ::-1]  # Pillow, as BGR
    np.testing.assert_array_equal(decode_unchanged(data, 'x.png'), upright)  # pixel moves only: exact


def test_a_portrait_jpeg_comes_out_portrait_and_the_tool_says_so(tmp_path, capsys, weights):
    (tmp_path / 'portrait.jpg').write_bytes(exif_bytes(np.full((24, 40, 3), 128, np.uint8), 6, 'JPEG'))
    status, out, err = run(capsys, 'upscale', str(tmp_path / 'portrait.jpg'), str(tmp_path / 'out'), '--weights',
                           str(weights))
    assert status == 0, err
    assert cv2.imread(str(tmp_path / 'out' / 'portrait_x2.png')).shape[:2] == (80, 48)  # stored 40x24, shown 24x40
    assert 'EXIF orientation 6' in out


@pytest.mark.parametrize('ext', ['jpg', 'webp', 'bmp'])
def test_16_bit_images_written_to_8_bit_formats_keep_their_values(tmp_path, capsys, weights, ext):
    deep = np.full((10, 12, 3), 30000, np.uint16)
    deep[:, 6:] = 50000
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    status, out, err = run(capsys, 'upscale', str(tmp_path / 'deep.png'), str(tmp_path / f'out.{ext}'), '--weights',
                           str(weights))
    assert status == 0, err
    result = cv2.imread(str(tmp_path / f'out.{ext}'), cv2.IMREAD_UNCHANGED)
    assert result.dtype == np.uint8 and '16-bit image written as 8-bit' in out
    status, _, err = run(capsys, 'upscale', str(tmp_path / 'deep.png'), str(tmp_path / 'ref.png'), '--weights',
                         str(weights))
    reference = cv2.imread(str(tmp_path / 'ref.png'), cv2.IMREAD_UNCHANGED)
    assert reference.dtype == np.uint16  # PNG keeps 16 bits
    tolerance = 3 if ext == 'jpg' else 1  # JPEG is lossy on top of the 16 -> 8-bit map
    assert np.abs(result[..., :3].astype(float) - reference / 257).mean() <= tolerance


def test_jpeg_drops_alpha_and_says_so(tmp_path, capsys, weights):
    cv2.imwrite(str(tmp_path / 'logo.png'), np.full((8, 8, 4), 200, np.uint8))
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'logo.png'), str(tmp_path / 'logo.jpg'), '--weights',
                         str(weights))
    assert status == 0 and 'alpha channel dropped' in out
    assert cv2.imread(str(tmp_path / 'logo.jpg'), cv2.IMREAD_UNCHANGED).shape == (16, 16, 3)


def test_same_stem_inputs_get_distinct_outputs_and_webp_is_an_input(tmp_path, capsys, weights):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'scan.png'), np.full((8, 8, 3), 10, np.uint8))
    cv2.imwrite(str(inputs / 'scan.jpg'), np.full((8, 8, 3), 240, np.uint8))
    cv2.imwrite(str(inputs / 'photo.WEBP'), np.full((6, 8, 3), 90, np.uint8))
    status, out, err = run(capsys, 'upscale', str(inputs), str(tmp_path / 'out'), '--weights', str(weights))
    assert status == 0 and 'done: 3 written, 0 skipped (existing), 0 failed' in out, err
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == ['photo_x2.png', 'scan_jpg_x2.png', 'scan_png_x2.png']
    dark, bright = (cv2.imread(str(tmp_path / 'out' / n)).mean() for n in ('scan_png_x2.png', 'scan_jpg_x2.png'))
    assert dark < 100 < bright  # each output comes from its own input


def test_outputs_never_become_inputs(tmp_path, capsys, weights):
    folder = tmp_path / 'photos'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.full((8, 8, 3), 50, np.uint8))
    status, _, err = run(capsys, 'upscale', str(folder), str(folder), '--weights', str(weights))
    assert status == 2 and 'is the input folder' in err and err.count('\n') == 1
    for _ in range(2):  # a subfolder is fine: folders are not searched recursively
        status, out, _ = run(capsys, 'upscale', str(folder), str(folder / 'x2'), '--weights', str(weights))
        assert status == 0
    assert [p.name for p in (folder / 'x2').iterdir()] == ['a_x2.png'] and 'a_x2_x2' not in out


def test_suffix_and_ext_name_the_outputs(tmp_path, capsys, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((8, 8, 3), 50, np.uint8))
    status, _, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'o'), '--weights', str(weights),
                       '--ext', 'webp', '--suffix', 'sr')
    assert status == 0 and [p.name for p in (tmp_path / 'o').iterdir()] == ['a_sr.webp']


def unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be created: its parent is a file (permissions do not stop root)."""
    (tmp_path / 'blocker').write_text('a file, not a folder')
    return tmp_path / 'blocker' / 'out'


def test_every_tool_checks_its_output_can_be_written_before_working(tmp_path, capsys, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((8, 8, 3), 50, np.uint8))
    target = unwritable(tmp_path)
    write_clip(tmp_path / 'in.mp4', smooth_frames(3, 16, 16, 255, np.uint8))
    sets = tmp_path / 'sets' / 'Mine' / 'HR'
    sets.mkdir(parents=True)
    cv2.imwrite(str(sets / 'hr.png'), np.full((16, 16, 3), 50, np.uint8))
    commands = {
        'upscale': ['upscale', str(tmp_path / 'a.png'), str(target), '--weights', str(weights)],
        'evaluate': ['evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Mine', '--out',
                     str(target)],
        'convert': ['convert', str(weights), str(target / 'c.pth')],
        'export': ['export', str(weights), str(target / 'm.onnx')],
        'upscale (video)': ['upscale', str(tmp_path / 'in.mp4'), str(target / 'v.mp4'), '--weights', str(weights)],
    }
    for tool, argv in commands.items():
        status, out, err = run(capsys, *argv)
        assert status == 2 and err.startswith(f'error: cannot write to {target}') and err.count('\n') == 1, tool
        assert 'Mine (' not in out  # evaluate stopped before running the set


def test_evaluate_skips_empty_sets(tmp_path, capsys, weights):
    (tmp_path / 'sets' / 'Empty' / 'HR').mkdir(parents=True)
    full = tmp_path / 'sets' / 'Full' / 'HR'
    full.mkdir(parents=True)
    cv2.imwrite(str(full / 'hr.png'), np.full((16, 16, 3), 80, np.uint8))
    status, out, err = run(capsys, 'evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Empty',
                           'Full', '--out', str(tmp_path / 'e'))
    assert status == 0 and 'skipped Empty' in out, err
    assert re.search(r'Full: +0%.*image/s', err)  # the set's progress bar (cleared at its end: leave=False)
    assert 'Empty' not in (tmp_path / 'e' / 'table.csv').read_text()
    status, _, err = run(capsys, 'evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Empty',
                         '--out', str(tmp_path / 'e2'))
    assert status == 2 and 'no benchmark set with images' in err


def test_figure_rows_name_the_image_and_the_crop(monkeypatch):
    import rt4ksr_arch.evaluation as evaluation
    captured = {}
    monkeypatch.setattr(evaluation, 'comparison_row',
                        lambda crops, size: captured.setdefault('labels', [c[1] for c in crops]))
    hr = np.zeros((32, 32, 3), np.uint8)
    hr[20:, 24:] = 255  # bicubic errs most at this corner's edges
    lq = torch.zeros(1, 3, 16, 16)
    outputs = {'bicubic': np.zeros_like(hr), 'RT4KSR': hr.copy()}
    figure_row(hr, lq, outputs, 2, 4, 'RT4KSR', 'Set5/corner')
    label = captured['labels'][0]
    assert label.startswith('Set5/corner (') and label.endswith(')')
    x, y = (int(v) for v in label[label.index('(') + 1:-1].split(','))
    assert 16 <= x <= 24 and 12 <= y <= 20  # the 8x8 window over the white corner's edges


def test_fp16_on_a_cpu_warns(tmp_path, capsys, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((8, 8, 3), 50, np.uint8))
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'o.png'), '--weights',
                         str(weights), '--precision', 'fp16', '--device', 'cpu')
    assert status == 0 and 'warning: --precision fp16 on a CPU is slower' in out


def test_list_images_finds_every_case_and_webp(tmp_path):
    for name in ('a.PNG', 'b.Jpg', 'c.webp', 'd.TIFF', '.hidden.png', 'notes.txt'):
        (tmp_path / name).write_bytes(b'x')
    assert [Path(p).name for p in list_images(str(tmp_path))] == ['a.PNG', 'b.Jpg', 'c.webp', 'd.TIFF']


def test_an_output_that_is_the_input_or_differs_only_in_case_is_refused(tmp_path, capsys, weights):
    folder = tmp_path / 'danger'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.full((8, 8, 3), 50, np.uint8))
    original = (folder / 'a.png').read_bytes()
    for argv in ([str(folder / 'a.png'), str(folder / 'a.png')],
                 [str(folder / 'a.png'), str(tmp_path / 'danger' / '.' / 'a.png')],
                 [str(folder / 'a.png'), str(folder), '--suffix', '']):
        status, _, err = run(capsys, 'upscale', *argv, '--weights', str(weights), '--overwrite')
        assert status == 2 and 'is the input itself' in err and err.count('\n') == 1, argv
    assert (folder / 'a.png').read_bytes() == original
    cases = tmp_path / 'cases'
    cases.mkdir()
    for name in ('Scan.PNG', 'scan.png'):
        cv2.imwrite(str(cases / name), np.full((8, 8, 3), 50, np.uint8))
    status, _, err = run(capsys, 'upscale', str(cases), str(tmp_path / 'out'), '--weights', str(weights))
    assert status == 2 and 'ignore case' in err and 'Scan.PNG' in err and 'scan.png' in err
    assert not (tmp_path / 'out').exists()


def test_gray_with_alpha_stays_gray(tmp_path, capsys, weights):
    gray = np.tile(np.linspace(0, 255, 12, dtype=np.uint8), (10, 1))
    alpha = np.full_like(gray, 200)
    Image.fromarray(np.stack([gray, alpha], axis=2), 'LA').save(tmp_path / 'la.png')  # a gray+alpha PNG
    status, _, err = run(capsys, 'upscale', str(tmp_path / 'la.png'), str(tmp_path / 'o.png'), '--weights',
                         str(weights))
    assert status == 0, err
    out = cv2.imread(str(tmp_path / 'o.png'), cv2.IMREAD_UNCHANGED)
    assert out.shape == (20, 24, 4)
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    gray_only = tmp_path / 'l.png'
    cv2.imwrite(str(gray_only), gray)
    assert run(capsys, 'upscale', str(gray_only), str(tmp_path / 'o1.png'), '--weights', str(weights))[0] == 0
    assert (cv2.imread(str(tmp_path / 'o1.png'), cv2.IMREAD_UNCHANGED) == out[:, :, 0]).all()  # as plain gray


def test_evaluate_finds_a_broken_image_before_running_any_set(tmp_path, capsys, weights):
    for name in ('Good', 'Broken'):
        folder = tmp_path / 'sets' / name / 'HR'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'hr.png'), np.full((16, 16, 3), 80, np.uint8))
    (tmp_path / 'sets' / 'Broken' / 'HR' / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    status, out, err = run(capsys, 'evaluate', str(weights), '--data', str(tmp_path / 'sets'), '--sets', 'Good',
                           'Broken', '--out', str(tmp_path / 'e'))
    assert status == 2 and 'bad.png' in err and 'Good (' not in out  # found before Good was run


def test_a_checkpoint_named_as_the_other_format_says_rename(tmp_path, capsys, weights):
    from safetensors.torch import save_file
    as_safetensors = tmp_path / 'w.safetensors'
    as_safetensors.write_bytes(weights.read_bytes())
    status, _, err = run(capsys, 'convert', str(as_safetensors), str(tmp_path / 'c.pth'))
    assert status == 2 and 'holds a PyTorch checkpoint' in err and 'end in .pth' in err
    as_pth = tmp_path / 'w2.pth'
    save_file({'w': torch.zeros(2)}, str(as_pth))
    status, _, err = run(capsys, 'convert', str(as_pth), str(tmp_path / 'c2.pth'))
    assert status == 2 and 'holds a safetensors checkpoint' in err and 'end in .safetensors' in err


def test_a_pad_below_the_receptive_radius_is_said_not_exact(tmp_path, capsys, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), np.full((20, 20, 3), 50, np.uint8))
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'o.png'), '--weights',
                         str(weights), '--tile', '8', '--tile-pad', '2')
    assert status == 0 and 'NOT exact' in out
    status, out, _ = run(capsys, 'upscale', str(tmp_path / 'a.png'), str(tmp_path / 'o2.png'), '--weights',
                         str(weights), '--tile', '8')
    assert status == 0 and 'NOT exact' not in out
