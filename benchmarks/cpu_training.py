"""The README's CPU training tables: train.py on T91 + BSDS200 with options/train/rt4ksr_x2_cpu.yml.

  python benchmarks/cpu_training.py recipe [--iters N]        # the CPU recipe (its first N iterations)
  python benchmarks/cpu_training.py linear-start [--iters N]  # random init vs train.linear_start

``recipe`` runs the recipe as shipped (validating 4 times when shortened) and prints Set5/Set14
Y-PSNR (dB, crop 2) per validation with the bicubic line. ``linear-start`` runs the issue 14 setup
twice, the same data, seed and budget, once from PyTorch's default initialisation and once from
the linear start: x2, batch 16, 64x64 HR crops, AdamW 5e-4 at a constant LR, EMA 0.99, the
``--loss`` pixel loss (MSELoss: the squared error the least-squares fit minimises), Set5
validated every ``--every`` iterations; it also reports the linear start's own Set5 (a run that
stops when its least-squares fit ends) and the lowest Set5 after it. Both print the machine's load
before and after and the wall time: another process on the cores slows the run, not the PSNR.
Everything goes into ``--out`` (the data copy, options, logs, experiments with curves.png).
"""
import argparse
import copy
import csv
import shutil
import subprocess
import sys
import time
from os import getloadavg
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / 'options' / 'train' / 'rt4ksr_x2_cpu.yml'
RELEASED_SET5 = 36.14  # the released x2 weights, Set5 Y-PSNR crop 2 (README, "Reproduction")


def recipe_options(shared: Path, data: Path, experiments: Path, name: str) -> Dict[str, Any]:
    """The recipe with this machine's paths: the training copy ``data``, Set5/Set14 from ``shared``."""
    opt = yaml.safe_load(RECIPE.read_text())
    opt['name'] = name
    opt['datasets']['train']['dataroot_gt'] = str(data)
    for key, set_name in (('val_1', 'Set5'), ('val_2', 'Set14')):
        opt['datasets'][key]['dataroot_gt'] = str(shared / 'data' / set_name / 'HR')
        opt['datasets'][key]['dataroot_lq'] = str(shared / 'data' / set_name / 'LR_bicubic' / 'X2')
    opt['path']['experiments_root'] = str(experiments / name)
    return opt


def shortened(opt: Dict[str, Any], iters: int, validations: int = 4) -> Dict[str, Any]:
    """The first ``iters`` iterations of ``opt`` as shipped (its cosine keeps its full period)."""
    opt = copy.deepcopy(opt)
    opt['train']['total_iter'] = iters
    opt['val']['val_freq'] = opt['logger']['save_checkpoint_freq'] = max(iters // validations, 1)
    return opt


def issue_setup(opt: Dict[str, Any], iters: int, every: int, linear_start: bool,
                loss: str = 'MSELoss') -> Dict[str, Any]:
    """Issue 14's comparison: batch 16, EMA 0.99, constant AdamW 5e-4, the pixel loss ``loss`` (a basicsr
    loss type), Set5 only, every ``every`` iterations.

    ``warmup_iter`` is 0: the linear start brings its own warmup (RT4KSRModel), random init has none.
    The default loss is MSELoss because the linear start is the least-squares (squared-error) optimum:
    under L1Loss training first moves it to the L1 optimum, of lower PSNR (README, "Training").
    """
    opt = copy.deepcopy(opt)
    opt['datasets']['train']['batch_size_per_gpu'] = 16
    del opt['datasets']['val_2']
    opt['train'].update(ema_decay=0.99, linear_start=linear_start, total_iter=iters, warmup_iter=0,
                        scheduler={'type': 'MultiStepLR', 'milestones': [iters + 1], 'gamma': 1.0})
    opt['train']['optim_g'].update(lr=5e-4, betas=[0.9, 0.999])  # the issue's setup (the recipe has 0.99 now)
    opt['train']['pixel_opt']['type'] = loss
    opt['val']['val_freq'] = every
    opt['logger']['save_checkpoint_freq'] = iters
    opt['logger']['print_freq'] = min(opt['logger']['print_freq'], every)
    return opt


def copy_training_data(shared: Path, data: Path) -> None:
    """T91 and BSDS200 side by side in ``data`` (one folder, as the recipe expects), copied once."""
    for set_name in ('T91', 'BSDS200'):
        if not (data / set_name).is_dir():
            shutil.copytree(shared / 'data' / set_name / 'HR', data / set_name)


def train(opt: Dict[str, Any], out: Path) -> Tuple[Path, float]:
    """Run train.py on ``opt`` (written to ``out``); the experiment folder and the wall time (s)."""
    options = out / f'{opt["name"]}.yml'
    options.write_text(yaml.safe_dump(opt, sort_keys=False))
    experiment = Path(opt['path']['experiments_root'])
    if experiment.exists():
        shutil.rmtree(experiment)
    start = time.perf_counter()
    with open(out / f'{opt["name"]}.log', 'w') as log:
        proc = subprocess.run([sys.executable, str(ROOT / 'rt4ksr_arch' / 'train.py'), '-opt', str(options)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode:
        sys.exit(f'train.py failed ({proc.returncode}); see {out / (opt["name"] + ".log")}')
    return experiment, time.perf_counter() - start


def curves(experiment: Path) -> Tuple[Dict[str, Dict[int, float]], Dict[str, float]]:
    """PSNR per set and iteration, and each set's bicubic PSNR, from the run's curves.csv."""
    values: Dict[str, Dict[int, float]] = {}
    bicubic: Dict[str, float] = {}
    with open(experiment / 'curves.csv') as f:
        for row in csv.DictReader(f):
            if row['metric'] != 'psnr':
                continue
            if row['series'] == 'val':
                values.setdefault(row['set'], {})[int(row['iteration'])] = float(row['value'])
            elif row['series'] == 'bicubic':
                bicubic[row['set']] = float(row['value'])
    return values, bicubic


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ', '.join(f'{x:.2f}' for x in getloadavg())


def markdown(header: List[str], rows: List[List[str]]) -> str:
    """A Markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |', '| ' + ' | '.join('---' for _ in header) + ' |']
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def recipe(args: argparse.Namespace, data: Path) -> None:
    """The recipe's first ``args.iters`` iterations (all of it without): Set5/Set14 per validation."""
    opt = recipe_options(args.shared, data, args.out / 'experiments', 'cpu_recipe')
    if args.iters:
        opt = shortened(opt, args.iters)
    print(f'load before: {load()}')
    experiment, wall = train(opt, args.out)
    print(f'load after:  {load()}\nwall time: {wall:.0f} s for {opt["train"]["total_iter"]} iterations '
          f'(batch {opt["datasets"]["train"]["batch_size_per_gpu"]}); curves: {experiment / "curves.png"}')
    values, bicubic = curves(experiment)
    its = sorted(next(iter(values.values())))
    rows = [[f'{name} Y-PSNR'] + [f'{values[name][i]:.2f}' for i in its] + [f'{bicubic[name]:.2f}']
            for name in sorted(values)]
    print(markdown(['iterations'] + [f'{i:,}' for i in its] + ['bicubic'], rows))


def linear_start(args: argparse.Namespace, data: Path) -> None:
    """Issue 14's table: Set5 every ``args.every`` iterations, random init vs the linear start."""
    base = recipe_options(args.shared, data, args.out / 'experiments', 'unused')
    print(f'load before: {load()}')
    results, walls = {}, {}
    runs = [('linear_start_fit', 10, 10, True)] + [(name, args.iters, args.every, name == 'linear_start')
                                                   for name in args.runs]
    for name, iters, every, start in runs:
        opt = issue_setup(base, iters, every, start, args.loss)
        opt['name'] = name
        opt['path']['experiments_root'] = str(args.out / 'experiments' / name)
        experiment, walls[name] = train(opt, args.out)
        results[name], bicubic = curves(experiment)
    print(f'load after:  {load()}\nwall times: ' + ', '.join(f'{n} {w:.0f} s' for n, w in walls.items()))
    start = results['linear_start_fit']['Set5'][10]
    shown = [i for i in sorted(results[args.runs[0]]['Set5']) if i % args.show == 0]
    rows = [[name] + [f'{results[name]["Set5"][i]:.2f}' for i in shown] for name in args.runs]
    print(markdown(['Set5 Y-PSNR (dB) at iteration'] + [f'{i:,}' for i in shown], rows))
    if 'linear_start' not in results:
        return
    after = results['linear_start']['Set5']
    low = min(after, key=after.get)
    print(f'linear start: {start:.2f} dB when its fit ends (iteration 10); lowest after it {after[low]:.2f} dB '
          f'(iteration {low}); bicubic {bicubic["Set5"]:.2f} dB, released weights {RELEASED_SET5:.2f} dB')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('table', choices=('recipe', 'linear-start'))
    parser.add_argument('--iters', type=int, help='iterations (recipe: its total by default; linear-start: 1250)')
    parser.add_argument('--every', type=int, default=50, help='linear-start: validate every N iterations')
    parser.add_argument('--runs', nargs='+', choices=('random_init', 'linear_start'),
                        default=['random_init', 'linear_start'], help='linear-start: the runs to make')
    parser.add_argument('--loss', choices=('MSELoss', 'L1Loss'), default='MSELoss',
                        help='linear-start: the pixel loss of both runs (the recipe has MSELoss)')
    parser.add_argument('--show', type=int, default=250, help='linear-start: table columns every N iterations')
    parser.add_argument('--shared', type=Path, default=ROOT.parent / 'shared', help='the reference data folder')
    parser.add_argument('--out', type=Path, default=Path('/tmp/rt4ksr_cpu_training'),
                        help='folder for the runs\' experiments and options (default: %(default)s)')
    args = parser.parse_args()
    args.shared, args.out = args.shared.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / 'T91_BSDS200'
    copy_training_data(args.shared, data)
    if args.table == 'recipe':
        recipe(args, data)
    else:
        args.iters = args.iters or 1250
        linear_start(args, data)


if __name__ == '__main__':
    main()
