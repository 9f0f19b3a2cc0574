"""Prepare training data: HR sub-images, meta_info files, LMDBs and the bundled quickstart photos.

    rt4ksr prepare subimages INPUT_DIR OUTPUT_DIR [--crop-size 480] [--step 240]
                                            [--thresh-size 0] [--workers N] [--compression 3]
    rt4ksr prepare meta-info FOLDER [--output FILE] [--overwrite] [--workers N]
    rt4ksr prepare lmdb FOLDER OUTPUT.lmdb [--meta-info FILE] [--compression 1]
                                       [--batch 5000] [--overwrite] [--workers N]
    rt4ksr prepare bundled OUTPUT_DIR [--compression 3]
    rt4ksr prepare bicubic HR_DIR [--scales 2 3 4] [--output LR_ROOT] [--workers N]

Inputs are the images directly inside a folder (png/jpg/jpeg/bmp/tif/tiff/webp, any case; hidden
files and subfolders are ignored). Images are read as stored (``cv2.IMREAD_UNCHANGED``): gray,
16-bit and RGBA images keep their channels and depth in every output; BasicSR's loader
(``imfrombytes``, flag ``color``) later reads all of them as 8-bit 3-channel BGR.

Every file is written under a hidden temporary name in its own folder and renamed when complete,
and an LMDB is built in a hidden ``.<name>.partial-*.lmdb`` folder renamed at the end: a killed
run never leaves an output that looks finished. ``subimages`` and ``bundled`` skip what exists,
so rerunning finishes an interrupted run; ``meta-info`` and ``lmdb`` never replace an existing
output without ``--overwrite``. Unreadable images are reported by name (every one of them, after
the readable images are done) and the command exits with status 2.
"""
import argparse
import sys

from rt4ksr_arch.cli.common import add_overwrite, non_negative_int, positive_int
from rt4ksr_arch.prepare import (ImagesFailedError, build_lmdb, extract_subimages, write_bicubic_lr, write_bundled,
                                 write_meta_info)

HELP = 'training data: HR sub-images, meta_info files, LMDBs, the bundled quickstart photos'


def png_compression(text: str) -> int:
    """argparse type: a PNG compression level 0..9."""
    value = non_negative_int(text)
    if value > 9:
        raise argparse.ArgumentTypeError(f'PNG compression is 0..9, got {value}')
    return value


def _subimages(args: argparse.Namespace) -> str:
    return extract_subimages(args.input_dir, args.output_dir, args.crop_size, args.step, args.thresh_size,
                             args.workers, args.compression, progress=True)


def _meta_info(args: argparse.Namespace) -> str:
    return write_meta_info(args.folder, args.output, args.overwrite, args.workers, progress=True)


def _lmdb(args: argparse.Namespace) -> str:
    return build_lmdb(args.folder, args.output, args.meta_info, args.compression, args.batch, args.workers,
                      args.overwrite, progress=True)


def _bundled(args: argparse.Namespace) -> str:
    return write_bundled(args.output_dir, args.compression)


def _bicubic(args: argparse.Namespace) -> str:
    return write_bicubic_lr(args.hr_dir, args.scales, args.output, args.workers, args.compression, progress=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One subparser per step; each sets ``args.step_run`` to the function that runs it."""
    sub = parser.add_subparsers(dest='command', required=True, metavar='{subimages,meta-info,lmdb,bundled,bicubic}')
    workers = dict(type=positive_int, default=None, help='worker processes (default: the CPUs available)')

    p = sub.add_parser('subimages', help='crop HR images into overlapping sub-images (BasicSR extract_subimages)')
    p.add_argument('input_dir', help='folder of HR images (png/jpg/bmp/tif/webp)')
    p.add_argument('output_dir', help='folder for <stem>_s001.png, ... (created; existing sub-images are kept)')
    p.add_argument('--crop-size', type=positive_int, default=480, help='sub-image side (default 480)')
    p.add_argument('--step', type=positive_int, default=240, help='stride between sub-images (default 240)')
    p.add_argument('--thresh-size', type=non_negative_int, default=0,
                   help='add a border-flush last crop when more than this many pixels remain (default 0)')
    p.add_argument('--workers', **workers)
    p.add_argument('--compression', type=png_compression, default=3, help='PNG compression 0..9 (default 3)')
    p.set_defaults(step_run=_subimages)

    p = sub.add_parser('meta-info', help="write BasicSR's meta_info file (name (h,w,c)) for a folder of images")
    p.add_argument('folder', help='folder of images')
    p.add_argument('--output', default=None, help='file to write (default: meta_info_<FOLDER name>.txt beside FOLDER)')
    add_overwrite(p)
    p.add_argument('--workers', **workers)
    p.set_defaults(step_run=_meta_info)

    p = sub.add_parser('lmdb', help="store a folder of images as a BasicSR LMDB (keys = file stems)")
    p.add_argument('folder', help='folder of images')
    p.add_argument('output', help='LMDB folder to create, ending in .lmdb')
    p.add_argument('--meta-info', default=None, help='store only the images this meta_info file lists, in its order')
    p.add_argument('--compression', type=png_compression, default=1,
                   help='PNG compression of the values (default 1)')
    p.add_argument('--batch', type=positive_int, default=5000, help='images per LMDB transaction (default 5000)')
    add_overwrite(p)
    p.add_argument('--workers', **workers)
    p.set_defaults(step_run=_lmdb)

    p = sub.add_parser('bundled', help="write scikit-image's bundled photographs as quickstart train/val data")
    p.add_argument('output_dir', help='folder to fill with train/*.png and val/*.png')
    p.add_argument('--compression', type=png_compression, default=3, help='PNG compression 0..9 (default 3)')
    p.set_defaults(step_run=_bundled)

    p = sub.add_parser('bicubic', help='MATLAB-bicubic LR_bicubic/X<s>/<stem>x<s>.png files for an HR-only set')
    p.add_argument('hr_dir', help="a set's HR folder, e.g. datasets/Manga109/HR")
    p.add_argument('--scales', type=positive_int, nargs='+', default=[2, 3, 4], help='scales (default 2 3 4)')
    p.add_argument('--output', default=None, help='LR root (default: LR_bicubic beside HR_DIR)')
    p.add_argument('--workers', **workers)
    p.add_argument('--compression', type=png_compression, default=3, help='PNG compression 0..9 (default 3)')
    p.set_defaults(step_run=_bicubic)


def run(args: argparse.Namespace) -> int:
    """Run the chosen step and print its summary; exit status 0.

    When some images fail, prints what was done, then one ``failed:`` line per failing file, and
    re-raises for ``run_tool`` to print the one ``error:`` line (the count) and exit with status 2.
    """
    try:
        summary = args.step_run(args)
    except ImagesFailedError as err:
        if err.summary:
            print(err.summary)
        for failure in err.failures:
            print(f'failed: {failure.error}', file=sys.stderr)
        raise
    print(summary)
    return 0
