"""The evaluation CLI: paper numbers with a bicubic row, generated LR equals the shipped LR, self-ensemble helps."""
import csv
import shutil

import cv2
import pytest

from tests.helpers import run_module, shared
from tests.test_official_eval import EXPECTED


def evaluate(*args: str):
    done = run_module('-m', 'rt4ksr_arch', 'evaluate', *args)
    return done, done.stdout + done.stderr


def read_table(folder):
    with open(folder / 'table.csv') as f:
        rows = list(csv.reader(f))
    return {r[0]: dict(zip(rows[0][1:], map(float, r[1:]))) for r in rows[1:]}


def test_released_x2_table_figure_and_no_overwrite(tmp_path):
    weights = str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    data = shared('data')
    out = tmp_path / 'eval'
    done, log = evaluate(weights, '--data', str(data), '--sets', 'Set5', 'Urban100', '--out', str(out),
                         '--figure', 'Set5/butterfly', 'Set5/bird')
    assert done.returncode == 0, log[-3000:]
    assert 'skipped Urban100' in log
    table = read_table(out)
    assert table['RT4KSR']['Set5 psnr_y'] == pytest.approx(EXPECTED[2]['Set5']['psnr'], abs=0.01)
    assert table['RT4KSR']['Set5 ssim_y'] == pytest.approx(EXPECTED[2]['Set5']['ssim'], abs=1e-4)
    assert table['bicubic']['Set5 psnr_y'] < table['RT4KSR']['Set5 psnr_y'] - 2
    assert '| RT4KSR | 36.14 |' in (out / 'table.md').read_text()
    figure = cv2.imread(str(out / 'figure.png'))
    assert figure.shape[0] > 2 * 192 and figure.shape[1] > 4 * 192  # two rows of four panels

    # an HR-only copy: LR made here with MATLAB-exact bicubic gives the same table as the shipped LR
    hr_only = tmp_path / 'hr_only' / 'Set5' / 'HR'
    shutil.copytree(data / 'Set5' / 'HR', hr_only)
    done, log = evaluate(weights, '--data', str(tmp_path / 'hr_only'), '--sets', 'Set5', '--out', str(tmp_path / 'e2'))
    assert done.returncode == 0, log[-3000:]
    assert read_table(tmp_path / 'e2') == table

    before = (out / 'table.csv').read_bytes()
    done, log = evaluate(weights, '--data', str(data), '--sets', 'Set5', '--out', str(out))
    assert done.returncode == 2 and '--overwrite' in log
    assert (out / 'table.csv').read_bytes() == before


def test_self_ensemble_raises_set5_psnr(tmp_path):
    weights = str(shared('weights', 'rt4ksr_official', 'rt4ksr_x2.pth'))
    done, log = evaluate(weights, '--data', str(shared('data')), '--sets', 'Set5', '--out', str(tmp_path),
                         '--self-ensemble', '--tile', '96')
    assert done.returncode == 0, log[-3000:]
    plus = read_table(tmp_path)['RT4KSR+']['Set5 psnr_y']
    assert plus > EXPECTED[2]['Set5']['psnr'] + 0.02, plus
