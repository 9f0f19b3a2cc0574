"""ResumableEnlargedSampler: basicsr's EnlargedSampler, made exact for mid-epoch resume.

basicsr restarts the saved epoch from its first batch on resume, so the resumed run sees
other samples than an uninterrupted one. This sampler (installed by ``rt4ksr_arch.compat``)
keeps basicsr's per-epoch permutation but can skip the batches a resumed epoch already
consumed (armed by ``set_epoch``: basicsr's prefetchers open an iterator before the training loop
sets the first epoch, and a loader with workers draws its first indices right then, so a skip
armed earlier would go to that discarded iterator), tells the dataset the epoch, and hands datasets that declare
``accepts_enlarged_index`` the index before the modulo, so repeated images within one
enlarged epoch get their own random crops.
"""
from typing import Optional, Tuple

import torch

from basicsr.data.data_sampler import EnlargedSampler


class ResumableEnlargedSampler(EnlargedSampler):
    """EnlargedSampler + ``resume_at`` + epoch/enlarged-index hand-over to the dataset."""

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self._skip = 0
        self._resume: Optional[Tuple[int, int]] = None

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, 'set_epoch'):
            self.dataset.set_epoch(epoch)
        resume, self._resume = self._resume, None
        if resume is not None and resume[0] == epoch:
            self._skip = resume[1]

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """The first pass over ``epoch`` after ``set_epoch(epoch)`` starts after this many of this
        rank's samples (once)."""
        self._resume = (epoch, samples_done)

    def __iter__(self):
        # basicsr's permutation (seeded by the epoch), with the modulo left to datasets that want it
        generator = torch.Generator()
        generator.manual_seed(self.epoch)
        indices = torch.randperm(self.total_size, generator=generator).tolist()
        if not getattr(self.dataset, 'accepts_enlarged_index', False):
            indices = [v % len(self.dataset) for v in indices]
        indices = indices[self.rank:self.total_size:self.num_replicas]
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])
