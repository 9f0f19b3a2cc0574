"""``RT4KSRConfig``: the single, typed description of an RT4KSR network.

It is built from a BasicSR ``network_g`` section, attached to every network (``net.config``),
saved inside every checkpoint the project writes (key ``CONFIG_KEY``, beside ``params`` /
``params_ema``; BasicSR ignores it), stored in ONNX metadata and safetensors headers, and read
back by the one loader (``rt4ksr_arch.checkpoint``). Defaults are the authors' released "S"
network (Zamfir et al., CVPRW 2023): C=24, N=4, GELU, high-frequency branch off.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping

from rt4ksr_arch.errors import OptionError

ACTIVATIONS = ('gelu', 'relu', 'lrelu', 'prelu')
CONFIG_KEY = 'rt4ksr_config'  # where checkpoints written by this project keep the config


@dataclass(frozen=True)
class RT4KSRConfig:
    """Constructor arguments of ``RT4KSR`` / ``RT4KSRDeploy`` (validated on creation).

    Raises ``OptionError`` naming the field for a non-positive size, an unknown activation or
    a non-boolean ``hf_branch``.
    """

    num_in_ch: int = 3  # input image channels (3: RGB; 1: Y or gray)
    num_out_ch: int = 3  # output image channels
    num_feat: int = 24  # feature channels C at half resolution (24 in the released "S" models)
    num_block: int = 4  # body blocks N (each: LayerNorm2d -> re-parameterizable ResBlock -> activation)
    upscale: int = 2  # scale factor s: output is s*H x s*W
    act_type: str = 'gelu'  # body activation, one of ACTIVATIONS ('gelu' in the released models)
    hf_branch: bool = False  # the authors' high-frequency branch (off in the released models)

    def __post_init__(self) -> None:
        for name in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(name, f'must be a positive integer, got {value!r}')
        if not isinstance(self.act_type, str) or self.act_type.lower() not in ACTIVATIONS:
            raise OptionError('act_type', f'must be one of {", ".join(ACTIVATIONS)}, got {self.act_type!r}')
        if self.act_type != self.act_type.lower():
            object.__setattr__(self, 'act_type', self.act_type.lower())
        if not isinstance(self.hf_branch, bool):
            raise OptionError('hf_branch', f'must be true or false, got {self.hf_branch!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = 'network config') -> 'RT4KSRConfig':
        """A config from keyword values (a ``network_g`` section: ``type`` is ignored).

        Raises ``OptionError`` for unknown keys (a typo would otherwise be silently dropped).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - {'type'})
        if unknown:
            raise OptionError(where, f'has unknown keys {unknown}; RT4KSR takes {sorted(known)}')
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> Dict[str, Any]:
        """Plain ``{field: value}`` (what checkpoints, ONNX and safetensors metadata store)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for logs: ``x2, C=24, N=4, gelu, hf branch off, 3->3 channels``."""
        return (f'x{self.upscale}, C={self.num_feat}, N={self.num_block}, {self.act_type}, '
                f'hf branch {"on" if self.hf_branch else "off"}, {self.num_in_ch}->{self.num_out_ch} channels')
