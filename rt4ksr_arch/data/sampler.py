"""ResumableEnlargedSampler: basicsr's EnlargedSampler, made exact for mid-epoch resume.

basicsr restarts the saved epoch from its first batch on resume, so the resumed run sees
other samples than an uninterrupted one. This sampler (installed by ``rt4ksr_arch.compat``)
keeps basicsr's per-epoch permutation but can skip the batches a resumed epoch already
consumed, tells the dataset the epoch, and hands datasets that declare
``accepts_enlarged_index`` the index before the modulo, so repeated images within one
enlarged epoch get their own random crops.
"""
import torch

from basicsr.data.data_sampler import EnlargedSampler


class ResumableEnlargedSampler(EnlargedSampler):
    """EnlargedSampler + ``resume_at`` + epoch/enlarged-index hand-over to the dataset."""

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, 'set_epoch'):
            self.dataset.set_epoch(epoch)

    def resume_at(self, samples_done: int) -> None:
        """Start the next iteration after this many of this rank's samples (once)."""
        self._skip = samples_done

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
