"""Every shipped options file: it parses, its options agree, and what it points at exists or is made."""
import re
from pathlib import Path

import pytest
import yaml

from rt4ksr_arch.hub import RELEASED
from rt4ksr_arch.models.rt4ksr_model import validate_options
from tests.helpers import REPO

OPTIONS = sorted((REPO / 'options').glob('*/*.yml'))
TRAIN_NAMES = {yaml.safe_load(p.read_text())['name'] for p in (REPO / 'options' / 'train').glob('*.yml')}
DATASETS_README = (REPO / 'datasets' / 'README.md').read_text()


def load(path: Path) -> dict:
    opt = yaml.safe_load(path.read_text())
    opt['num_gpu'] = 0  # as basicsr resolves `auto` on this CPU machine
    return opt


def test_options_exist_and_names_are_unique():
    assert len(OPTIONS) >= 9
    names = [yaml.safe_load(p.read_text())['name'] for p in OPTIONS]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize('path', OPTIONS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_options_are_consistent_and_point_at_what_exists(path):
    opt = load(path)
    validate_options(opt)  # numbers, network config, scale/upscale, schedulers, prefetch, color
    pretrained = (opt.get('path') or {}).get('pretrain_network_g')
    if pretrained:
        made_by_recipe = re.fullmatch(r'experiments/([^/]+)/models/net_g_[\w]+\.pth', pretrained)
        assert pretrained in RELEASED or (made_by_recipe and made_by_recipe.group(1) in TRAIN_NAMES), \
            f'{path.name}: pretrain_network_g {pretrained} is neither a released name nor written by a recipe'
    for name, dataset in opt['datasets'].items():
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            value = dataset.get(key)
            if not value:
                continue
            assert value.startswith('datasets/'), f'{path.name}: {name}.{key} {value} is outside datasets/'
            top = value.split('/')[1]
            assert f'datasets/{top}' in DATASETS_README or f'{top}/' in DATASETS_README, \
                f'{path.name}: {name}.{key} needs datasets/{top}, which datasets/README.md does not explain'
