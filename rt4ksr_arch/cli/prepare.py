"""Prepare training data: HR sub-images, meta_info files, LMDBs and the bundled quickstart photos.

    rt4ksr prepare subimages INPUT_DIR OUTPUT_DIR [--crop-size 480] [--step 240]
                                            [--thresh-size 0] [--workers N] [--compression 3]
    rt4ksr prepare meta-info FOLDER [--output FILE] [--overwrite] [--workers N]
    rt4ksr prepare lmdb FOLDER OUTPUT.lmdb [--meta-info FILE] [--compression 1]
                                       [--batch 5000] [--overwrite] [--workers N]
    rt4ksr prepare bundled OUTPUT_DIR [--compression 3]

Inputs are the images directly inside a folder (png/jpg/jpeg/bmp/tif/tiff, any case; hidden
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
import functools
import itertools
import os
import shutil
import struct
import sys
import tempfile
import warnings
from multiprocessing import Pool
from os import path as osp
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

import rt4ksr_arch  # noqa: F401  (compat: basicsr imports only after it)
from basicsr.utils.lmdb_util import LmdbMaker
from rt4ksr_arch.data.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_unchanged
from rt4ksr_arch.fileio import TMP_SUFFIX, atomic_write_bytes

PARTIAL_LMDB = '.partial-'

# skimage.data photographs that ship inside the wheel (no download). Left out: the grayscale
# ones, synthetic images (logo, colorwheel, chessboards), `cat` (= chelsea) and
# motorcycle_right (the stereo twin of motorcycle_left: near-duplicate content).
BUNDLED_TRAIN = ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'motorcycle_left', 'immunohistochemistry',
                 'retina')
# Held out: cat fur is fine high-frequency texture, and at 300x451 validation is quick on a CPU.
BUNDLED_VAL = ('chelsea', )


class PrepareError(ValueError):
    """Input that cannot be prepared; the message names the file or folder and what to do."""


# ----------------------------------------------------------------------------------------------
# small pure pieces


def crop_positions(length: int, crop_size: int, step: int, thresh_size: int = 0) -> List[int]:
    """Start offsets of the crops along one axis, BasicSR's ``extract_subimages`` tiling.

    Crops start at 0, step, 2*step, ... while they fit. If more than ``thresh_size`` pixels are
    left uncovered after the last one, a final crop flush with the far border is added. An axis
    shorter than ``crop_size`` gets no crop (BasicSR raises IndexError there).
    """
    if crop_size <= 0 or step <= 0 or thresh_size < 0:
        raise ValueError(f'need crop_size > 0, step > 0, thresh_size >= 0; got {crop_size}, {step}, {thresh_size}')
    if length < crop_size:
        return []
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def subimage_name(stem: str, index: int) -> str:
    """BasicSR's sub-image name, 1-based and zero-padded to 3 digits: ``0001_s001.png``."""
    return f'{stem}_s{index:03d}.png'


def is_image_name(name: str) -> bool:
    """A non-hidden file name with an accepted image extension (any case)."""
    return not name.startswith('.') and osp.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def meta_info_line(name: str, shape: Sequence[int]) -> str:
    """One line of a BasicSR meta_info file: ``0001_s001.png (480,480,3)``."""
    h, w, c = shape
    return f'{name} ({h},{w},{c})'


def lmdb_key(name: str) -> str:
    """The LMDB key of an image file name: its name without extension, checked for BasicSR.

    ``FileClient`` encodes keys as ASCII and ``paths_from_lmdb`` recovers them from
    meta_info.txt with ``line.split('.')[0]``, so a key must be ASCII without dots or spaces.
    """
    key = osp.splitext(name)[0]
    if not key.isascii() or '.' in key or any(ch.isspace() for ch in key) or not key:
        raise PrepareError(f'{name}: LMDB keys are file names without extension and must be ASCII without '
                           "dots or whitespace (BasicSR reads them back with line.split('.')[0]); rename the file")
    return key


def default_workers() -> int:
    """The CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def png_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) from a PNG's IHDR chunk (24 bytes read), or None if it is not a PNG."""
    try:
        with open(path, 'rb') as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR':
        return None
    width, height = struct.unpack('>II', head[16:24])
    return height, width


def header_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) from the file header alone (Pillow opens lazily), or None if unsure.

    Lets a rerun skip finished images without decoding them; both Pillow here and
    ``cv2.IMREAD_UNCHANGED`` report the stored size, ignoring EXIF orientation.
    """
    try:
        from PIL import Image
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(path) as img:
                width, height = img.size
        return height, width
    except Exception:  # any doubt: the caller decodes the image instead
        return None


# ----------------------------------------------------------------------------------------------
# files


def list_images(folder: str) -> List[str]:
    """Sorted names of the images directly inside ``folder``; clear errors if there are none."""
    if not osp.exists(folder):
        raise FileNotFoundError(f'folder not found: {folder}')
    if not osp.isdir(folder):
        raise PrepareError(f'not a folder: {folder}')
    names, subfolders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                subfolders.append(entry.name)
            elif entry.is_file() and is_image_name(entry.name):
                names.append(entry.name)
    if not names:
        hint = f'; subfolders ({", ".join(sorted(subfolders)[:3])}) are not searched' if subfolders else ''
        raise PrepareError(f'no images ({"/".join(e[1:] for e in IMAGE_EXTENSIONS)}) in {folder}{hint}')
    return sorted(names)


def check_unique_stems(names: Iterable[str], what: str) -> None:
    """Two inputs with one stem (``a.png``, ``a.jpg``) would write the same outputs."""
    seen: Dict[str, str] = {}
    for name in names:
        stem = osp.splitext(name)[0]
        if stem in seen:
            raise PrepareError(f'{what}: {seen[stem]} and {name} have the same name stem and would write the same '
                               'outputs; rename or move one of them')
        seen[stem] = name


def read_image(path: str) -> np.ndarray:
    """The image as stored (``cv2.IMREAD_UNCHANGED``); PrepareError naming the file otherwise."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it cannot tell missing from corrupt
        return decode_unchanged(data.tobytes(), path)
    except OSError as err:
        raise PrepareError(f'cannot read {path}: {err.strerror or err}') from err
    except ImageReadError as err:
        raise PrepareError(str(err)) from err


def image_shape(img: np.ndarray) -> Tuple[int, int, int]:
    """(h, w, c) with c = 1 for a 2-D gray image, as BasicSR's meta_info files write it."""
    return (img.shape[0], img.shape[1], img.shape[2] if img.ndim == 3 else 1)


def encode_png(img: np.ndarray, compression: int) -> bytes:
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise PrepareError(f'cv2 could not encode a {img.dtype} {img.shape} image as PNG')
    return buf.tobytes()


def remove_stale_temp_files(folder: str) -> int:
    """Delete ``.<name>.png.*.tmp`` files left by a killed run; return how many."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and entry.name.startswith('.') and entry.name.endswith(TMP_SUFFIX) \
                    and '.png.' in entry.name:
                os.remove(entry.path)
                removed += 1
    return removed


def run_jobs(job: Callable, items: Sequence, workers: int, desc: str, ordered: bool = False) -> Iterator:
    """``job`` over ``items`` in a process pool (in-process for one worker), with a progress bar."""
    workers = max(1, min(workers, len(items)))
    bar = tqdm(total=len(items), unit='image', desc=desc, dynamic_ncols=True)
    try:
        if workers == 1:
            results: Iterable = map(job, items)
            yield from _advance(results, bar)
        else:
            with Pool(workers) as pool:
                results = (pool.imap if ordered else pool.imap_unordered)(job, items, chunksize=4)
                yield from _advance(results, bar)
    finally:
        bar.close()


def _advance(results: Iterable, bar: tqdm) -> Iterator:
    for result in results:
        bar.update(1)
        yield result


def _failures_error(failures: List[str], total: int, after: str) -> PrepareError:
    for message in failures:
        print(f'error: {message}', file=sys.stderr)
    return PrepareError(f'{len(failures)} of {total} images failed (listed above); {after}')


# ----------------------------------------------------------------------------------------------
# subimages


def _check_existing_crops(out_dir: str, stem: str, count: int, crop_size: int) -> None:
    """Existing sub-images of ``stem`` must be the ones these settings make (else: mixed outputs)."""
    stale = None
    for index in range(1, count + 1):
        target = osp.join(out_dir, subimage_name(stem, index))
        size = png_size(target) if osp.exists(target) else (crop_size, crop_size)
        if size != (crop_size, crop_size):
            stale = target
            break
    extra = osp.join(out_dir, subimage_name(stem, count + 1))
    if stale is None and osp.exists(extra):
        stale = extra
    if stale is not None:
        raise PrepareError(f'{stale} does not belong to the {count} {crop_size}x{crop_size} sub-images these '
                           'settings make from this image: OUTPUT_DIR holds sub-images from other settings or from '
                           'another image with the same name; use a new OUTPUT_DIR')


def extract_subimages_of(path: str, out_dir: str, crop_size: int, step: int, thresh_size: int,
                         compression: int) -> Tuple[str, str, int]:
    """Write the missing sub-images of one image; return (name, status, number written).

    status: ``written``, ``complete`` (all existed), ``small`` (no crop fits) or
    ``error: <message>`` (unreadable image, or sub-images of other settings in ``out_dir``).
    """
    name = osp.basename(path)
    stem = osp.splitext(name)[0]
    try:
        size = header_size(path)
        if size is not None:
            counts = [len(crop_positions(n, crop_size, step, thresh_size)) for n in size]
            if 0 in counts:
                return name, 'small', 0
            count = counts[0] * counts[1]
            if all(osp.exists(osp.join(out_dir, subimage_name(stem, i))) for i in range(1, count + 1)):
                _check_existing_crops(out_dir, stem, count, crop_size)
                return name, 'complete', 0
        img = read_image(path)
        rows = crop_positions(img.shape[0], crop_size, step, thresh_size)
        cols = crop_positions(img.shape[1], crop_size, step, thresh_size)
        if not rows or not cols:
            return name, 'small', 0
        _check_existing_crops(out_dir, stem, len(rows) * len(cols), crop_size)
        written = 0
        for index, (y, x) in enumerate(itertools.product(rows, cols), start=1):
            target = osp.join(out_dir, subimage_name(stem, index))
            if osp.exists(target):  # finished by an earlier run: files only ever appear complete
                continue
            atomic_write_bytes(target, encode_png(img[y:y + crop_size, x:x + crop_size], compression))
            written += 1
        return name, 'written' if written else 'complete', written
    except PrepareError as err:
        return name, f'error: {err}', 0


def extract_subimages(input_dir: str, output_dir: str, crop_size: int = 480, step: int = 240, thresh_size: int = 0,
                      workers: Optional[int] = None, compression: int = 3) -> str:
    """Crop every image of ``input_dir`` into ``output_dir``; return a one-line summary."""
    crop_positions(crop_size, crop_size, step, thresh_size)  # validates the settings
    names = list_images(input_dir)
    check_unique_stems(names, input_dir)
    if osp.abspath(input_dir) == osp.abspath(output_dir):
        raise PrepareError('INPUT_DIR and OUTPUT_DIR are the same folder; choose another OUTPUT_DIR')
    os.makedirs(output_dir, exist_ok=True)
    cleaned = remove_stale_temp_files(output_dir)
    job = functools.partial(extract_subimages_of, out_dir=output_dir, crop_size=crop_size, step=step,
                            thresh_size=thresh_size, compression=compression)
    paths = [osp.join(input_dir, name) for name in names]
    written, complete, small, failures = 0, 0, [], []
    for name, status, count in run_jobs(job, paths, workers or default_workers(), 'subimages'):
        if status.startswith('error: '):
            failures.append(status[len('error: '):])
        elif status == 'small':
            small.append(name)
        else:
            written += count
            complete += status == 'complete'
    summary = (f'subimages: {len(names)} images in {input_dir} -> {output_dir}: {written} sub-images written, '
               f'{complete} images already complete')
    if small:
        shown = ', '.join(sorted(small)[:5]) + (', ...' if len(small) > 5 else '')
        summary += f', {len(small)} smaller than {crop_size}x{crop_size} skipped ({shown})'
    if cleaned:
        summary += f', {cleaned} temporary files of an interrupted run removed'
    if failures:
        print(summary)
        raise _failures_error(sorted(failures), len(names), 'the others are done; fix these and run again')
    return summary


# ----------------------------------------------------------------------------------------------
# meta-info


def _shape_of(path: str) -> Tuple[str, Optional[Tuple[int, int, int]], str]:
    try:
        return path, image_shape(read_image(path)), ''
    except PrepareError as err:
        return path, None, str(err)


def default_meta_info_path(folder: str) -> str:
    """``meta_info_<folder name>.txt`` beside the folder (inside, BasicSR would list it as an image)."""
    folder = osp.normpath(osp.abspath(folder))
    return osp.join(osp.dirname(folder), f'meta_info_{osp.basename(folder)}.txt')


def write_meta_info(folder: str, output: Optional[str] = None, overwrite: bool = False,
                    workers: Optional[int] = None) -> str:
    """Write ``name (h,w,c)`` for every image of ``folder`` (sorted); return a summary."""
    output = output or default_meta_info_path(folder)
    names = list_images(folder)
    if osp.exists(output) and not overwrite:
        raise FileExistsError(f'{output} exists; pass --overwrite to replace it, or choose another --output')
    for name in names:
        if any(ch.isspace() for ch in name):
            raise PrepareError(f'{osp.join(folder, name)}: BasicSR splits meta_info lines at spaces, so image names '
                               'must not contain whitespace; rename the file')
    # Decoding every image (not just its header) gives the exact shape BasicSR's lmdb tools
    # write and finds corrupt files now rather than in the middle of training.
    results = run_jobs(_shape_of, [osp.join(folder, n) for n in names], workers or default_workers(), 'meta-info',
                       ordered=True)
    lines, failures = [], []
    for (_, shape, error), name in zip(results, names):
        if shape is None:
            failures.append(error)
        else:
            lines.append(meta_info_line(name, shape))
    if failures:
        raise _failures_error(failures, len(names), f'nothing was written to {output}')
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    atomic_write_bytes(output, ''.join(line + '\n' for line in lines).encode('utf-8'), fsync=True)
    return f'meta-info: {len(lines)} images of {folder} -> {output}'


def read_meta_info_names(path: str) -> List[str]:
    """Image names of a meta_info file: the first space-separated field of each line, as BasicSR reads it."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'meta_info file not found: {path}')
    with open(path, 'r', encoding='utf-8') as f:
        names = [line.strip().split(' ')[0] for line in f if line.strip()]
    if not names:
        raise PrepareError(f'meta_info file {path} lists no images')
    return names


# ----------------------------------------------------------------------------------------------
# lmdb


def _png_of(path: str, compression: int) -> Tuple[Optional[bytes], Optional[Tuple[int, int, int]], str]:
    try:
        img = read_image(path)
        return encode_png(img, compression), image_shape(img), ''
    except PrepareError as err:
        return None, None, str(err)


def _remove_partial_lmdbs(output: str) -> int:
    parent, base = osp.split(output)
    prefix = f'.{base[:-len(".lmdb")]}{PARTIAL_LMDB}'
    stale = [n for n in os.listdir(parent or '.') if n.startswith(prefix) and n.endswith('.lmdb')]
    for name in stale:
        shutil.rmtree(osp.join(parent, name))
    return len(stale)


def build_lmdb(folder: str, output: str, meta_info: Optional[str] = None, compression: int = 1, batch: int = 5000,
               workers: Optional[int] = None, overwrite: bool = False) -> str:
    """Store the images of ``folder`` (or those ``meta_info`` lists, in its order) in BasicSR's LMDB layout.

    Keys are the file stems, values the PNG-encoded image, and ``meta_info.txt`` inside holds
    ``<key>.png (h,w,c) <compression>`` per image, as ``basicsr.utils.lmdb_util`` writes it.
    """
    output = osp.normpath(output)
    if not output.endswith('.lmdb'):
        raise PrepareError(f'{output}: the LMDB folder name must end with .lmdb (BasicSR checks it)')
    if osp.exists(output) and not overwrite:
        raise FileExistsError(f'{output} exists; pass --overwrite to replace it, or choose another OUTPUT')
    if meta_info:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'folder not found: {folder}')
        names = read_meta_info_names(meta_info)
        missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
        if missing:
            raise PrepareError(f'{len(missing)} images listed in {meta_info} are not in {folder}, e.g. '
                               f'{", ".join(missing[:3])}')
    else:
        names = list_images(folder)
    keys = [lmdb_key(n) for n in names]
    check_unique_stems(names, meta_info or folder)

    parent = osp.dirname(osp.abspath(output))
    os.makedirs(parent, exist_ok=True)
    cleaned = _remove_partial_lmdbs(osp.abspath(output))
    # Built under a hidden temporary name and renamed when complete: a killed run leaves only
    # a `.<name>.partial-*.lmdb` folder (removed by the next run), never a short OUTPUT.
    partial = tempfile.mkdtemp(prefix=f'.{osp.basename(output)[:-len(".lmdb")]}{PARTIAL_LMDB}', suffix='.lmdb',
                               dir=parent)
    try:
        os.rmdir(partial)  # LmdbMaker refuses an existing folder
        # Not make_lmdb_from_imgs: it sizes the map from the first image x10 (MapFullError when later
        # images are larger), decodes in one process or holds every image in memory, and crashes
        # on an unreadable file. Its LmdbMaker writer (1 TiB sparse map) is fed by a pool instead.
        maker = LmdbMaker(partial, batch=batch, compress_level=compression)
        job = functools.partial(_png_of, compression=compression)
        failures = []
        results = run_jobs(job, [osp.join(folder, n) for n in names], workers or default_workers(), 'lmdb',
                           ordered=True)
        for key, (data, shape, error) in zip(keys, results):
            if data is None:
                failures.append(error)
            elif not failures:  # after a failure only the remaining errors are collected
                maker.put(data, key, shape)
        maker.close()
        if failures:
            raise _failures_error(failures, len(names), f'{output} was not written')
        with open(osp.join(partial, 'meta_info.txt'), 'rb+') as f:
            os.fsync(f.fileno())  # data.mdb is synced by LMDB's commit; its listing must be durable too
        if osp.exists(output):  # --overwrite: swap, so the old LMDB is never deleted before the new one is in place
            old = partial[:-len('.lmdb')] + '.old.lmdb'
            os.rename(output, old)
            os.rename(partial, output)
            shutil.rmtree(old)
        else:
            os.rename(partial, output)
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, lmdb.Error):  # e.g. a 1 TiB map refused under a `ulimit -v`
            raise PrepareError(f'LMDB error while building {output}: {type(err).__name__}: {err}') from err
        raise
    summary = f'lmdb: {len(keys)} images of {folder} -> {output} (PNG compression {compression})'
    if cleaned:
        summary += f'; {cleaned} partial build(s) of an interrupted run removed'
    return summary


# ----------------------------------------------------------------------------------------------
# bundled


def bundled_loaders() -> Dict[str, Callable[[], np.ndarray]]:
    """skimage.data loaders of the bundled photographs, RGB uint8 arrays."""
    from skimage import data
    loaders = {name: getattr(data, name) for name in BUNDLED_TRAIN + BUNDLED_VAL if hasattr(data, name)}
    loaders['motorcycle_left'] = lambda: data.stereo_motorcycle()[0]
    return loaders


def write_bundled(output_dir: str, compression: int = 3) -> str:
    """Write the bundled photographs as PNG into ``output_dir/train`` and ``output_dir/val``."""
    loaders = bundled_loaders()
    written, present, skipped = 0, 0, []
    for split, names in (('train', BUNDLED_TRAIN), ('val', BUNDLED_VAL)):
        os.makedirs(osp.join(output_dir, split), exist_ok=True)
        remove_stale_temp_files(osp.join(output_dir, split))
        for name in names:
            target = osp.join(output_dir, split, f'{name}.png')
            if osp.exists(target):
                present += 1
                continue
            try:
                rgb = loaders[name]()
            except Exception as err:  # a future scikit-image may move an image behind a download
                skipped.append(name)
                print(f'warning: skimage.data.{name} is not available offline ({type(err).__name__}); skipped',
                      file=sys.stderr)
                continue
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise PrepareError(f'skimage.data.{name} is {rgb.dtype} {rgb.shape}, expected an RGB uint8 photo')
            atomic_write_bytes(target, encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), compression))
            written += 1
    if written + present == 0:
        raise PrepareError('none of the bundled skimage.data photographs could be loaded (is scikit-image installed?)')
    summary = (f'bundled: {output_dir}/train ({len(BUNDLED_TRAIN)} photos), {output_dir}/val '
               f'({", ".join(BUNDLED_VAL)}): {written} written, {present} already present')
    return summary + (f', {len(skipped)} unavailable ({", ".join(skipped)})' if skipped else '')


# ----------------------------------------------------------------------------------------------
# command line


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def _compression(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f'PNG compression is 0..9, got {value}')
    return value


HELP = 'training data: HR sub-images, meta_info files, LMDBs, the bundled quickstart photos'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='command', required=True, metavar='{subimages,meta-info,lmdb,bundled}')
    workers = dict(type=_positive, default=None, help='worker processes (default: the CPUs available)')

    p = sub.add_parser('subimages', help='crop HR images into overlapping sub-images (BasicSR extract_subimages)')
    p.add_argument('input_dir', help='folder of HR images (png/jpg/bmp/tif)')
    p.add_argument('output_dir', help='folder for <stem>_s001.png, ... (created; existing sub-images are kept)')
    p.add_argument('--crop-size', type=_positive, default=480, help='sub-image side (default 480)')
    p.add_argument('--step', type=_positive, default=240, help='stride between sub-images (default 240)')
    p.add_argument('--thresh-size', type=_non_negative, default=0,
                   help='add a border-flush last crop when more than this many pixels remain (default 0)')
    p.add_argument('--workers', **workers)
    p.add_argument('--compression', type=_compression, default=3, help='PNG compression 0..9 (default 3)')

    p = sub.add_parser('meta-info', help="write BasicSR's meta_info file (name (h,w,c)) for a folder of images")
    p.add_argument('folder', help='folder of images')
    p.add_argument('--output', default=None, help='file to write (default: meta_info_<FOLDER name>.txt beside FOLDER)')
    p.add_argument('--overwrite', action='store_true', help='replace the file if it exists')
    p.add_argument('--workers', **workers)

    p = sub.add_parser('lmdb', help="store a folder of images as a BasicSR LMDB (keys = file stems)")
    p.add_argument('folder', help='folder of images')
    p.add_argument('output', help='LMDB folder to create, ending in .lmdb')
    p.add_argument('--meta-info', default=None, help='store only the images this meta_info file lists, in its order')
    p.add_argument('--compression', type=_compression, default=1, help='PNG compression of the values (default 1)')
    p.add_argument('--batch', type=_positive, default=5000, help='images per LMDB transaction (default 5000)')
    p.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    p.add_argument('--workers', **workers)

    p = sub.add_parser('bundled', help="write scikit-image's bundled photographs as quickstart train/val data")
    p.add_argument('output_dir', help='folder to fill with train/*.png and val/*.png')
    p.add_argument('--compression', type=_compression, default=3, help='PNG compression 0..9 (default 3)')


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == 'subimages':
            summary = extract_subimages(args.input_dir, args.output_dir, args.crop_size, args.step, args.thresh_size,
                                        args.workers, args.compression)
        elif args.command == 'meta-info':
            summary = write_meta_info(args.folder, args.output, args.overwrite, args.workers)
        elif args.command == 'lmdb':
            summary = build_lmdb(args.folder, args.output, args.meta_info, args.compression, args.batch,
                                 args.workers, args.overwrite)
        else:
            summary = write_bundled(args.output_dir, args.compression)
    except (PrepareError, OSError) as err:  # OSError: missing paths, existing outputs, full disk, permissions
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(summary)
    return 0
