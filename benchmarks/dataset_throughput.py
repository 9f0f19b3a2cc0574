"""Cost of making the LR on the fly: OnlineBicubicPairedDataset vs basicsr's PairedImageDataset.

    python benchmarks/dataset_throughput.py [--hr ../shared/data/BSDS200/HR] [--images 100]

Both read the same HR PNGs (BSDS200 by default, 481x321, like DF2K sub-images); the baseline
also reads pre-made MATLAB-bicubic x2 LR files (written to a temporary folder first, by our
bit-exact resize). Train phase, gt_size 256, flips + rot90, batch 16, 0 and 2 workers; prints
samples/s and the overhead of online generation (target: <= 20%).
"""
import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

import rt4ksr_arch  # noqa: F401  (registers the dataset, basicsr compatibility fixes)
from basicsr.data import build_dataset
from rt4ksr_arch.ops.bicubic import imresize

REPO = Path(__file__).resolve().parents[1]


def write_pairs(hr_dir: Path, out: Path, count: int, scale: int) -> None:
    """Mod-cropped HR copies and their MATLAB-bicubic LR files, same file names."""
    (out / 'HR').mkdir(parents=True)
    (out / 'LR').mkdir()
    for path in sorted(hr_dir.glob('*.png'))[:count]:
        hr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        hr = np.ascontiguousarray(hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale])
        lr = imresize(torch.from_numpy(hr).permute(2, 0, 1), 1 / scale).permute(1, 2, 0).numpy()
        cv2.imwrite(str(out / 'HR' / path.name), hr)
        cv2.imwrite(str(out / 'LR' / path.name), lr)


def samples_per_second(dataset, workers: int, batch: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for data in loader:
            count += data['lq'].shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hr', type=Path, default=REPO.parent / 'shared' / 'data' / 'BSDS200' / 'HR')
    parser.add_argument('--images', type=int, default=100)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16)
    args = parser.parse_args()
    if not args.hr.is_dir():
        raise SystemExit(f'HR folder not found: {args.hr} (pass --hr <folder of PNG images>)')

    common = dict(phase='train', scale=2, gt_size=256, use_hflip=True, use_rot=True, io_backend={'type': 'disk'})
    with tempfile.TemporaryDirectory() as tmp:
        write_pairs(args.hr, Path(tmp), args.images, 2)
        paired = build_dataset(dict(common, name='premade', type='PairedImageDataset', dataroot_gt=f'{tmp}/HR',
                                    dataroot_lq=f'{tmp}/LR', filename_tmpl='{}'))
        online = build_dataset(dict(common, name='online', type='OnlineBicubicPairedDataset', dataroot_gt=f'{tmp}/HR'))
        print(f'{len(online)} HR images from {args.hr}, gt_size 256, x2, batch {args.batch}, '
              f'{args.epochs} epochs, torch threads {torch.get_num_threads()}')
        for workers in (0, 2):
            # alternate and keep the best of two rounds: page cache and CPU clocks settle
            best = {'premade': 0.0, 'online': 0.0}
            for _ in range(2):
                for name, dataset in (('premade', paired), ('online', online)):
                    best[name] = max(best[name], samples_per_second(dataset, workers, args.batch, args.epochs))
            overhead = best['premade'] / best['online'] - 1
            print(f'workers {workers}: PairedImageDataset (pre-made LR) {best["premade"]:.1f} samples/s, '
                  f'OnlineBicubicPairedDataset {best["online"]:.1f} samples/s, online overhead {overhead:+.1%}')


if __name__ == '__main__':
    main()
