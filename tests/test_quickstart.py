"""The README's quickstart, end to end (slow: about 2 minutes on 2 CPU cores): it beats bicubic."""
import re

import pytest
import yaml

from tests.helpers import REPO, run_module


@pytest.mark.slow
def test_quickstart_beats_bicubic_by_0_3_db(tmp_path):
    pytest.importorskip('skimage.data')
    data = tmp_path / 'bundled'
    done = run_module('-m', 'rt4ksr_arch', 'prepare', 'bundled', str(data))
    assert done.returncode == 0, done.stderr[-2000:]
    # the shipped options, with the data and the experiment folder moved into tmp_path
    opt = yaml.safe_load((REPO / 'options' / 'train' / 'rt4ksr_x2_quickstart.yml').read_text())
    opt['datasets']['train']['dataroot_gt'] = str(data / 'train')
    opt['datasets']['val']['dataroot_gt'] = str(data / 'val')
    opt['path']['experiments_root'] = str(tmp_path / 'experiments')
    options = tmp_path / 'quickstart.yml'
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    done = run_module('rt4ksr_arch/train.py', '-opt', str(options), timeout=1800)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    final = log[log.rindex('End of training'):]
    network = float(re.search(r'Validation bundled_val\s+# psnr: ([\d.]+)', final).group(1))
    bicubic = float(re.search(r'bicubic baseline[^\n]*\n\s+# psnr: ([\d.]+)', final).group(1))
    assert network >= bicubic + 0.3, (network, bicubic)
