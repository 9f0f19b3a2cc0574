"""Video in and out with PyAV (FFmpeg in-process): any container and codec in; H.264 / H.265 /
AV1 / FFV1 (NVENC on GPUs) out, audio and subtitles copied, timestamps, colour description,
rotation and metadata kept, 10-bit kept 10-bit; decode, network and encode overlapped.

OpenCV stays for still images (``rt4ksr_arch.data.image_io``); everything that moves is here.
"""
from rt4ksr_arch.media.codecs import EncoderChoice, choose_encoder
from rt4ksr_arch.media.pipeline import PipelineStats, run_pipeline
from rt4ksr_arch.media.realtime import RealtimeChoice, pick_realtime
from rt4ksr_arch.media.streams import (VIDEO_EXTENSIONS, DecodedFrame, FrameFolderSink, FrameFolderSource, RawPipeSink,
                                       VideoFileSink, VideoFileSource, VideoInfo, is_video_name, viewer_command)
from rt4ksr_arch.media.video import PIPE, VideoOptions, network_only_fps, open_source, upscale_video

__all__ = ['EncoderChoice', 'choose_encoder', 'PipelineStats', 'run_pipeline', 'RealtimeChoice', 'pick_realtime',
           'VIDEO_EXTENSIONS', 'DecodedFrame', 'FrameFolderSink', 'FrameFolderSource', 'RawPipeSink', 'VideoFileSink',
           'VideoFileSource', 'VideoInfo', 'is_video_name', 'viewer_command', 'PIPE', 'VideoOptions',
           'network_only_fps', 'open_source', 'upscale_video']
