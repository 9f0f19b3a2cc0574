"""Write a test video from still frames (the ../shared 1920x1080 photos by default), for video FPS runs.

    python benchmarks/make_clip.py OUTPUT.mp4 [--frames 12] [--fps 30] [--source DIR] [--crf 18]

H.264 (libx264, yuv420p, BT.709 tags) through PyAV, as a camera or an editor would deliver it.
"""
import argparse
import glob
import sys
from fractions import Fraction

import av
import cv2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('output')
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--fps', type=Fraction, default=Fraction(30))
    parser.add_argument('--crf', type=int, default=18)
    parser.add_argument('--source', default='../shared/data/UHD_1080p/crops_1920x1080')
    args = parser.parse_args()
    stills = [cv2.imread(p) for p in sorted(glob.glob(f'{args.source}/*.png'))]
    if not stills or any(s is None or s.shape != stills[0].shape for s in stills):
        print(f'error: {args.source} must hold readable PNGs of one size', file=sys.stderr)
        return 2
    height, width = stills[0].shape[:2]
    with av.open(args.output, 'w') as out:
        stream = out.add_stream('libx264', rate=args.fps, options={'crf': str(args.crf), 'preset': 'medium'})
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        for name in ('color_primaries', 'color_trc', 'colorspace'):
            setattr(stream.codec_context, name, 1)  # BT.709, as HD video is
        stream.codec_context.color_range = 1
        for i in range(args.frames):
            frame = av.VideoFrame.from_ndarray(stills[i % len(stills)][:, :, ::-1].copy(), format='rgb24')
            out.mux(stream.encode(frame.reformat(format='yuv420p', dst_colorspace=1, dst_color_range=1)))
        out.mux(stream.encode(None))
    print(f'{args.output}: {args.frames} frames of {width}x{height} at {args.fps} fps (H.264, BT.709)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
