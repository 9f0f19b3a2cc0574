"""Decode -> network -> encode, overlapped: a decode thread, the network, an encode thread.

The three stages are joined by bounded queues (Real-ESRGAN's reader/writer threads around the
network are the model), so decoding the next frames and encoding the previous ones run while
the network works, and memory stays bounded by the queue depth. Frames are batched
(``batch``) for the network. On CUDA the host->device copy of each batch comes from pinned
memory, non-blocking, on its own stream, so it overlaps the previous batch's compute; the
device->host copy of the result is non-blocking into pinned memory too.

All torch work (conversion to [0, 1], the network, rounding back to 8/16 bit) stays on the
calling thread; the decode and encode threads only run FFmpeg (decoder, swscale, encoder,
muxer), which releases the GIL.

Audio and subtitle packets travel with the frames in file order, so the muxer interleaves them
without holding the whole soundtrack. An exception or Ctrl-C in any stage stops all three and
the sink removes its partial output.
"""
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence, Union

import av
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from rt4ksr_arch.media.streams import DecodedFrame

QUEUE_BATCHES = 2  # batches buffered between stages: enough to overlap, little memory
_END = object()


@dataclass
class PipelineStats:
    """What a run measured. Latency: from a frame leaving the decoder to its encoded output (ms)."""

    frames: int = 0
    seconds: float = 0.0  # wall time, first decode to last encode
    # network thread busy time: batches through the network, host<->device, rounding; on a CPU the
    # decoder and encoder share the cores meanwhile, so this is not the network's speed alone
    network_seconds: float = 0.0
    latencies_ms: List[float] = field(default_factory=list)
    deadline_misses: Optional[int] = None  # with a target frame rate
    shortfall: Optional[str] = None  # the source ended early or was damaged (VideoFileSource.shortfall)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def network_fps(self) -> float:
        return self.frames / self.network_seconds if self.network_seconds else 0.0

    def latency_percentiles(self) -> dict:
        """{50, 95, 99} -> milliseconds (empty before the first frame)."""
        if not self.latencies_ms:
            return {}
        return {p: float(np.percentile(self.latencies_ms, p)) for p in (50, 95, 99)}


class _Stage(threading.Thread):
    """A daemon thread that runs ``work`` and keeps its exception for the main thread."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as err:  # handed to the main thread, which re-raises it
            self.error = err


def _raise_failed(stages: Sequence[_Stage]) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def _put(q: queue.Queue, item, stop: threading.Event, stages: Sequence[_Stage] = ()) -> bool:
    """Put ``item`` unless ``stop`` is set first (False); raises the error of a stage that died."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
        _raise_failed(stages)
    return False


def _get(q: queue.Queue, stop: threading.Event, stages: Sequence[_Stage]):
    """The next item; raises the error of a stage that died, ``_END`` when stopped."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
        _raise_failed(stages)
        if stop.is_set():
            return _END


class DeviceTransfer:
    """Host<->device copies for batches: pinned memory, non-blocking, on a side CUDA stream.

    On the CPU both directions are plain (zero-copy) conversions.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == 'cuda'
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None

    def to_device(self, arrays: List[np.ndarray], peak: float) -> Tensor:
        """[N, H, W, 3] integer frames -> float32 [N, 3, H, W] in [0, 1] on the device."""
        batch = torch.from_numpy(np.stack(arrays))
        if batch.dtype == torch.uint16:
            batch = batch.to(torch.int32)  # few kernels take uint16; int32 holds it exactly
        if not self.cuda:
            return batch.permute(0, 3, 1, 2).float().div_(peak)
        with torch.cuda.stream(self.copy_stream):
            gpu = batch.pin_memory().to(self.device, non_blocking=True)
            out = gpu.permute(0, 3, 1, 2).float().div_(peak)
        torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)
        out.record_stream(torch.cuda.current_stream(self.device))
        return out

    def to_host(self, sr: Tensor, peak: float, dtype: np.dtype) -> np.ndarray:
        """float [N, 3, H, W] (any device) -> [N, H, W, 3] ``dtype`` frames, rounded and clamped to [0, peak]."""
        quantized = sr.clamp(0, 1).mul_(peak).round_().permute(0, 2, 3, 1)
        quantized = quantized.to(torch.int32 if dtype == np.uint16 else torch.uint8)
        if quantized.device.type == 'cuda':
            host = torch.empty(quantized.shape, dtype=quantized.dtype, pin_memory=True)
            host.copy_(quantized, non_blocking=True)
            torch.cuda.current_stream(quantized.device).synchronize()
            quantized = host
        return quantized.contiguous().numpy().astype(dtype, copy=False)


def run_pipeline(items: Iterable[Union[DecodedFrame, av.Packet]], network: Callable[[Tensor], Tensor], sink,
                 device: torch.device, peak: int, batch: int = 1, total: Optional[int] = None,
                 target_fps: Optional[float] = None, progress: bool = True, desc: str = '') -> PipelineStats:
    """Upscale every frame of ``items`` into ``sink``; copied packets pass through in order.

    ``network``: float [N, 3, h, w] in [0, 1] -> float [N, 3, s*h, s*w] (an ``Upscaler``).
    ``peak``: 255 for 8-bit frames, 65535 for 16-bit. ``target_fps``: frames arrive as from a
    live source, frame k at start + k / target_fps; it misses its deadline when its output is
    later than arrival + (batch + 1) / target_fps (one batch to gather, one frame period to
    process). ``sink.close(complete)`` is called in every case: renamed when complete, removed
    when not. Returns ``PipelineStats``.
    """
    decoded: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES * batch + 1)
    upscaled: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()
    stats = PipelineStats()
    transfer = DeviceTransfer(device)
    dtype = np.uint16 if peak > 255 else np.uint8
    done_at: List[float] = []
    bar = tqdm(total=total, unit='frame', desc=desc, disable=not progress, smoothing=0.1)

    def decode() -> None:
        for item in items:
            if not _put(decoded, item, stop):
                return
        _put(decoded, _END, stop)

    def encode() -> None:
        while True:
            item = _get(upscaled, stop, ())
            if item is _END:
                return
            packets, frames, arrays = item
            for packet in packets:
                sink.write_packet(packet)
            for frame, array in zip(frames, arrays):
                sink.write_frame(array, frame.pts)
                now = time.perf_counter()
                done_at.append(now)
                stats.latencies_ms.append((now - frame.decoded_at) * 1000)
            bar.update(len(frames))

    reader, writer = _Stage('rt4ksr-decode', decode), _Stage('rt4ksr-encode', encode)
    start = time.perf_counter()
    complete = False
    try:
        reader.start()
        writer.start()
        finished = False
        while not finished:
            packets: List[av.Packet] = []
            frames: List[DecodedFrame] = []
            while len(frames) < batch:
                item = _get(decoded, stop, (reader, writer))
                if item is _END:
                    finished = True
                    break
                (frames if isinstance(item, DecodedFrame) else packets).append(item)
            if frames:
                began = time.perf_counter()
                # quantized here, not in the encode thread: torch ops stay on one thread
                sr = transfer.to_host(network(transfer.to_device([f.array for f in frames], peak)), peak, dtype)
                stats.network_seconds += time.perf_counter() - began
                stats.frames += len(frames)
            if (frames or packets) and not _put(upscaled, (packets, frames, sr if frames else []), stop,
                                                (reader, writer)):
                break
        _put(upscaled, _END, stop, (reader, writer))
        while writer.is_alive():
            writer.join(0.1)
            _raise_failed((reader, ))
        _raise_failed((reader, writer))
        complete = True
    finally:
        stop.set()
        bar.close()
        for stage in (reader, writer):
            if stage.is_alive():  # an interrupt (Ctrl-C, SIGTERM) can land before a stage has started
                stage.join(5)
        stats.seconds = time.perf_counter() - start
        sink.close(complete)
    if target_fps:
        period = 1.0 / target_fps
        stats.deadline_misses = sum(1 for k, t in enumerate(done_at)
                                    if t - start > (k + batch + 1) * period)
    return stats
