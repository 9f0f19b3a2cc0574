"""Video in and out with PyAV (FFmpeg in-process): any container and codec in; H.264 / H.265 /
AV1 / VP9 / FFV1 (NVENC on GPUs) out, chosen for the output container, audio and subtitles copied
(text subtitles converted where the container needs it), timestamps, colour description,
rotation, aspect ratio, HDR10 and metadata kept, 10-bit kept 10-bit; decode, network and encode
overlapped.

OpenCV stays for still images (``rt4ksr_arch.data.image_io``); everything that moves is here.
"""
from rt4ksr_arch.media.codecs import EncoderChoice, choose_encoder, parse_encoder_options, set_verbosity
from rt4ksr_arch.media.pipeline import PipelineStats, run_pipeline
from rt4ksr_arch.media.realtime import RealtimeChoice, pick_realtime
from rt4ksr_arch.media.streams import (VIDEO_EXTENSIONS, DecodedFrame, FrameFolderSink, FrameFolderSource, RawPipeSink,
                                       ReaderClosed, VideoFileSink, VideoFileSource, VideoInfo, VideoPlan,
                                       is_video_file, is_video_name, viewer_command)
from rt4ksr_arch.media.video import (PIPE, VideoOptions, media_ms_per_frame, network_only_fps, open_source,
                                     plan_video, refuse_encoder_settings, upscale_video)

__all__ = ['EncoderChoice', 'choose_encoder', 'parse_encoder_options', 'set_verbosity', 'PipelineStats',
           'run_pipeline', 'RealtimeChoice', 'pick_realtime', 'VIDEO_EXTENSIONS', 'DecodedFrame', 'FrameFolderSink',
           'FrameFolderSource', 'RawPipeSink', 'ReaderClosed', 'VideoFileSink', 'VideoFileSource', 'VideoInfo',
           'VideoPlan', 'is_video_file', 'is_video_name', 'viewer_command', 'PIPE', 'VideoOptions',
           'media_ms_per_frame', 'network_only_fps', 'open_source', 'plan_video', 'refuse_encoder_settings',
           'upscale_video']
