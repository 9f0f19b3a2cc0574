"""Write a test video from still frames (the ../shared 1920x1080 photos by default), for video FPS runs.

    python benchmarks/make_clip.py OUTPUT.mp4 [--frames 12] [--fps 30] [--source DIR]
"""
import argparse
import glob
import sys

import cv2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('output')
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--source', default='../shared/data/UHD_1080p/crops_1920x1080')
    args = parser.parse_args()
    stills = [cv2.imread(p) for p in sorted(glob.glob(f'{args.source}/*.png'))]
    if not stills or any(s is None or s.shape != stills[0].shape for s in stills):
        print(f'error: {args.source} must hold readable PNGs of one size', file=sys.stderr)
        return 2
    height, width = stills[0].shape[:2]
    writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*'mp4v'), args.fps, (width, height))
    for i in range(args.frames):
        writer.write(stills[i % len(stills)])
    writer.release()
    print(f'{args.output}: {args.frames} frames of {width}x{height} at {args.fps} fps')
    return 0


if __name__ == '__main__':
    sys.exit(main())
