"""The basicsr 1.4.2 compatibility fixes, each against the breakage it answers."""
import socket
import sys
from collections import Counter

import pytest
import torch

from rt4ksr_arch import compat
from rt4ksr_arch.errors import CheckpointError
from tests.helpers import run_module


def test_functional_tensor_alias_lets_basicsr_degradations_import():
    import basicsr.data.degradations as degradations
    from torchvision.transforms import functional
    assert degradations.rgb_to_grayscale is functional.rgb_to_grayscale
    assert 'torchvision.transforms.functional_tensor' in sys.modules


def test_local_rank_spellings():
    argv = ['train.py', '-opt', 'x.yml', '--local-rank=3', '--launcher', 'pytorch']
    assert compat.normalize_local_rank_argv(argv) == ['train.py', '-opt', 'x.yml', '--local_rank=3', '--launcher',
                                                      'pytorch']
    assert compat.normalize_local_rank_argv(['--local-rank', '2']) == ['--local_rank', '2']


def test_init_dist_really_starts_gloo_on_cpu():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    code = ('import os; os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", '
            f'MASTER_PORT="{port}"); import rt4ksr_arch, torch.distributed as dist; '
            'from basicsr.utils import options; options.init_dist("pytorch"); '
            'print(dist.get_backend(), dist.get_world_size()); dist.destroy_process_group()')
    done = run_module('-c', code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ['gloo', '1']


def test_init_dist_timeout_and_yaml_backend_override(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda **kw: calls.append(kw))
    monkeypatch.setattr(torch.multiprocessing, 'get_start_method', lambda allow_none=False: 'spawn')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    compat.init_dist('pytorch')
    monkeypatch.setattr(compat, '_pending_dist_params', {'backend': 'mpi', 'timeout_minutes': 5})
    compat.init_dist('pytorch')
    assert [(c['backend'], c['timeout'].total_seconds()) for c in calls] == [('gloo', 7200.0), ('mpi', 300.0)]


def test_training_state_with_counter_resumes_on_cpu(tmp_path):
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = MultiStepRestartLR(opt, milestones=[2, 4], gamma=0.5)
    assert isinstance(scheduler.state_dict()['milestones'], Counter)
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for it in (5, 40, 300):
        torch.save({'iter': it, 'epoch': 0, 'schedulers': [scheduler.state_dict()], 'optimizers': []},
                   states / f'{it}.state')
        torch.save({'params': {'w': torch.zeros(1)}}, models / f'net_g_{it}.pth')
    (states / 'notes.txt').write_text('ignored')
    assert compat.training_states(str(states))[0] == str(states / '300.state')
    opt_dict = {'auto_resume': True, 'name': 'exp', 'network_g': {},
                'path': {'training_states': str(states), 'models': str(models)}}
    state = compat.load_resume_state(opt_dict)
    assert state['iter'] == 300 and opt_dict['path']['resume_state'] == str(states / '300.state')
    assert state['schedulers'][0]['milestones'] == Counter([2, 4])
    assert compat.load_resume_state({'auto_resume': True, 'path': {'training_states': str(tmp_path / 'none')}}) \
        is None


def test_auto_resume_skips_damaged_states_and_models_naming_them(tmp_path, capsys):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for it in (2, 4, 6):
        torch.save({'iter': it, 'epoch': 0, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
        torch.save({'params': {'w': torch.zeros(1)}}, models / f'net_g_{it}.pth')
    data = (states / '6.state').read_bytes()
    (states / '6.state').write_bytes(data[:len(data) // 2])  # killed while writing
    (models / 'net_g_4.pth').write_bytes(b'')  # a full disk
    opt = {'auto_resume': True, 'name': 'exp', 'network_g': {},
           'path': {'training_states': str(states), 'models': str(models)}}
    state = compat.load_resume_state(opt)
    assert state['iter'] == 2 and opt['path']['resume_state'] == str(states / '2.state')
    err = capsys.readouterr().err
    assert '6.state is damaged' in err and 'net_g_4.pth' in err
    assert 'run with --auto_resume' not in err  # it is running with it: no advice to use it
    opt = {'auto_resume': False, 'name': 'exp', 'network_g': {},
           'path': {'training_states': str(states), 'models': str(models), 'resume_state': str(states / '6.state')}}
    with pytest.raises(CheckpointError, match='6.state is damaged.*--auto_resume'):
        compat.load_resume_state(opt)
    (states / '2.state').write_bytes(b'')  # nothing intact left: a restart from 0, said
    opt = {'auto_resume': True, 'name': 'exp', 'network_g': {},
           'path': {'training_states': str(states), 'models': str(models)}}
    assert compat.load_resume_state(opt) is None
    assert 'no intact training state' in capsys.readouterr().err
