"""Run a checkpoint over every benchmark set present; write a Markdown + CSV table (+ figure).

    rt4ksr evaluate WEIGHTS [--data datasets] [--out results/evaluate_<weights>]
                    [--sets Set5 Set14 B100 Urban100 Manga109] [--tile N] [--self-ensemble]
                    [--precision fp32|fp16|bf16] [--figure Set5/butterfly Set14/zebra] [--overwrite]

PSNR and SSIM on the BT.601 Y channel and PSNR on RGB, crop border = scale, on 8-bit outputs
(as BasicSR's test.py reports them), with bicubic upscaling of the same LR as a row. Without
``LR_bicubic`` files the LR is made with MATLAB-exact bicubic. Missing sets are listed and
skipped. Existing tables are kept unless ``--overwrite``. ``--degradation ntire23`` makes the
LR as the NTIRE 2023 real-time SR challenge did (centre crop, PIL bicubic, JPEG 90; metrics
without border crop, as the challenge) and ``jpeg:Q`` adds a JPEG round trip to bicubic
(``rt4ksr_arch/ops/degradations.py``).
"""
import argparse
from os import path as osp
from pathlib import Path

import cv2

from rt4ksr_arch.cli.common import (add_inference, add_overwrite, add_weights, inference_setup, load_network,
                                    make_upscaler, positive_int, refuse_existing, writable_folder)
from rt4ksr_arch.data.image_io import is_image_name
from rt4ksr_arch.errors import OptionError, RT4KSRError
from rt4ksr_arch.evaluation import SETS, evaluate_sets
from rt4ksr_arch.fileio import atomic_write_bytes
from rt4ksr_arch.ops.degradations import parse_degradation

HELP = 'PSNR/SSIM table (vs bicubic) on Set5/Set14/B100/Urban100/Manga109, and a comparison figure'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights(parser, positional=True)
    parser.add_argument('--data', default='datasets', help='folder holding <Set>/HR (default: datasets)')
    parser.add_argument('--sets', nargs='+', default=list(SETS), help=f'sets to run (default: {" ".join(SETS)})')
    parser.add_argument('--out', default=None, help='output folder (default: results/evaluate_<weights stem>)')
    add_inference(parser, batch=False)
    parser.add_argument('--figure', nargs='*', default=[], metavar='SET/STEM',
                        help='images for figure.png, e.g. Set5/butterfly Set14/zebra')
    parser.add_argument('--crop', type=positive_int, default=48, help='figure crop side in LR pixels (default 48)')
    parser.add_argument('--degradation', default='bicubic',
                        help='how the LR is made: bicubic (default: LR_bicubic files or MATLAB bicubic), ntire23 '
                        '(the NTIRE 2023 RTSR test degradation), jpeg:Q (bicubic + JPEG quality Q)')
    add_overwrite(parser)


def run(args: argparse.Namespace) -> int:
    setup = inference_setup(args)
    try:
        degradation = parse_degradation(args.degradation)
    except OptionError as err:
        raise err.renamed({'degradation': '--degradation'}) from None
    border = 0 if degradation.kind == 'ntire23' else None
    figure_images = []
    for item in args.figure:  # checked now: a typo must not cost a whole evaluation
        if item.count('/') != 1:
            raise RT4KSRError(f'--figure {item!r}: expected SET/STEM, e.g. Set5/butterfly')
        name, stem = item.split('/')
        hr_dir = Path(args.data) / name / 'HR'
        if name not in args.sets or not any(is_image_name(p.name) and p.stem == stem for p in hr_dir.glob(f'{stem}.*')):
            raise RT4KSRError(f'--figure {item}: no image {stem} in {hr_dir} among --sets {" ".join(args.sets)}')
        figure_images.append((name, stem))
    out = Path(args.out or osp.join('results', f'evaluate_{Path(args.weights).stem}'))
    targets = [out / 'table.md', out / 'table.csv'] + ([out / 'figure.png'] if figure_images else [])
    refuse_existing(targets, args.overwrite)
    net, weights = load_network(args)
    if (net.num_in_ch, net.num_out_ch) != (3, 3):
        raise RT4KSRError(f'{weights.source} maps {net.num_in_ch} to {net.num_out_ch} channels; the benchmark sets '
                          'are RGB and their metrics need a 3->3 network')
    writable_folder(out)
    upscaler = make_upscaler(net, setup)
    print(f'evaluate x{upscaler.scale}: {weights.describe()}; {upscaler.describe()}; LR: {degradation.name}')
    method = 'RT4KSR+' if upscaler.opts.self_ensemble else 'RT4KSR'
    result = evaluate_sets(upscaler, Path(args.data), args.sets, method, figure_images, args.crop, report=print,
                           progress=True, degradation=degradation, border=border)
    if figure_images and not result.figure_rows:
        raise RT4KSRError(f'none of {args.figure} was found among the evaluated images')
    markdown = result.markdown(f'x{result.scale}, {weights.source} [{weights.key}]; LR: {degradation.name}; Y: BT.601, '
                               f'crop border {result.scale if border is None else border}; RGB PSNR same crop')
    atomic_write_bytes(str(out / 'table.md'), markdown.encode())
    atomic_write_bytes(str(out / 'table.csv'), result.csv().encode())
    if figure_images:
        atomic_write_bytes(str(out / 'figure.png'), cv2.imencode('.png', result.figure())[1].tobytes())
    print(markdown)
    print(f'written: {", ".join(str(t) for t in targets)}')
    return 0
