"""RT4KSR for spandrel (ComfyUI and other programs that load models through it).

Registered the way ``spandrel_extra_arches`` registers its architectures, through spandrel's public
API (``Architecture``, ``ArchSupport``, ``ArchRegistry``, ``MAIN_REGISTRY``)::

    from rt4ksr_arch.spandrel_support import install
    install()  # once per process; then spandrel.ModelLoader().load_from_file('rt4ksr_x2.safetensors')

Detection and loading are this project's one loader (``weights_from_checkpoint`` and
``load_model``): a state dict is RT4KSR exactly when that loader builds a network from it and
loads it strictly (every key, every shape). The descriptor's model is the fused ``RT4KSRDeploy``
(train-form weights are fused on load), run in channels_last memory.

Limits of the route, both spandrel's: spandrel hands architectures the bare state dict. Our
safetensors files hold their config as a tensor too (``checkpoint.config_tensor``), so it arrives;
a config stored beside a ``.pth`` state dict (BasicSR's ``rt4ksr_config``) does not: activation and
high-frequency branch are then the released ones (GELU, off) unless the tensors show PReLU slopes,
and the descriptor's tags say ``assumed …``. And ``ModelLoader.load_from_file`` unpickles ``.pth``
with spandrel's own allow-list, which refuses the authors' released files and Lightning ``.ckpt``
files as shipped (their scheduler state holds a ``collections.Counter``); convert them once
(``rt4ksr convert W.pth W.safetensors``) or pass ``torch.load(W, weights_only=True)`` to
``ModelLoader().load_from_state_dict``.
"""
import warnings
from typing import Any, List

import torch
from spandrel import (MAIN_REGISTRY, Architecture, ArchRegistry, ArchSupport, ImageModelDescriptor, ModelTiling,
                      SizeRequirements, StateDict)
from torch import Tensor, nn

from rt4ksr_arch.checkpoint import load_model, weights_from_checkpoint
from rt4ksr_arch.errors import CheckpointError

ARCH_ID = 'RT4KSR'
BF16_WARNING = ('RT4KSR in bfloat16 loses about 0.4 dB PSNR-Y against fp32 (Set5 x2 with the released weights; '
                'its 8-bit mantissa through the LayerNorms): use fp16 on GPUs and fp32 on CPUs')


class RT4KSRDescriptor(ImageModelDescriptor):
    """spandrel's ``ImageModelDescriptor`` that warns (``UserWarning``) when cast to bfloat16."""

    def to(self, *args: Any, **kwargs: Any) -> 'RT4KSRDescriptor':
        if torch.bfloat16 in args or kwargs.get('dtype') is torch.bfloat16:
            warnings.warn(BF16_WARNING, stacklevel=2)
        return super().to(*args, **kwargs)


def _channels_last(model: nn.Module, image: Tensor) -> Tensor:
    # channels_last turns every LayerNorm2d into one native kernel (README, "Real-time 4K")
    return model(image.contiguous(memory_format=torch.channels_last))


def detect(state_dict: StateDict) -> bool:
    """Whether the project's loader reads ``state_dict`` (any supported layout) as RT4KSR weights."""
    try:
        load_model(weights_from_checkpoint(state_dict, 'state dict'))
    except CheckpointError:
        return False
    return True


class RT4KSRArch(Architecture[nn.Module]):
    """RT4KSR (Zamfir, Conde, Timofte, CVPRW 2023), train-time and fused checkpoints, any config."""

    def __init__(self) -> None:
        super().__init__(id=ARCH_ID, name='RT4KSR', detect=detect)

    def load(self, state_dict: StateDict) -> RT4KSRDescriptor:
        """The fused network of ``state_dict`` as a descriptor: any input size, tiles supported.

        Raises ``CheckpointError`` for a state dict ``detect`` refuses.
        """
        net, weights = load_model(weights_from_checkpoint(state_dict, 'state dict'), deploy=True)
        config = weights.config
        tags = [f'{config.num_feat}nf', f'{config.num_block}nb', config.act_type] + \
            (['hf branch'] if config.hf_branch else []) + \
            ([f'assumed {", ".join(f"{k}={getattr(config, k)}" for k in weights.assumed)}'] if weights.assumed else [])
        return RT4KSRDescriptor(
            net.to(memory_format=torch.channels_last), net.state_dict(), architecture=self,
            purpose='SR' if config.upscale > 1 else 'Restoration', tags=tags, supports_half=True,
            supports_bfloat16=True, scale=config.upscale, input_channels=config.num_in_ch,
            output_channels=config.num_out_ch, size_requirements=SizeRequirements(), tiling=ModelTiling.SUPPORTED,
            call_fn=_channels_last)


REGISTRY = ArchRegistry()
"""RT4KSR's registry; ``MAIN_REGISTRY.add(*REGISTRY)`` (what ``install`` does) makes spandrel load it."""
REGISTRY.add(ArchSupport.from_architecture(RT4KSRArch()))


def install(*, ignore_duplicates: bool = False) -> List[ArchSupport]:
    """Add RT4KSR to spandrel's ``MAIN_REGISTRY`` (detected after spandrel's own architectures).

    Returns the entries added. Raises spandrel's ``DuplicateArchitectureError`` when it is already
    installed, unless ``ignore_duplicates``.
    """
    return MAIN_REGISTRY.add(*REGISTRY, ignore_duplicates=ignore_duplicates)
