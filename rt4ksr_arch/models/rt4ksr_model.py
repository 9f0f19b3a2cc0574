"""RT4KSRModel: BasicSR's SRModel with RT4KSR-aware checkpoint loading."""
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy
from rt4ksr_arch.checkpoint import load_rt4ksr_weights


@MODEL_REGISTRY.register()
class RT4KSRModel(SRModel):
    """SRModel whose ``path.pretrain_network_g`` accepts any RT4KSR checkpoint format.

    The authors' ``.pth``, Lightning ``.ckpt``, BasicSR ``params``/``params_ema`` and bare
    state dicts all load; train-form weights are fused for ``RT4KSRDeploy``; a scale or
    width mismatch fails with a message naming the option to change.
    """

    def load_network(self, net, load_path, strict=True, param_key='params'):
        bare = self.get_bare_model(net)
        if not isinstance(bare, (RT4KSR, RT4KSRDeploy)):
            return super().load_network(net, load_path, strict, param_key)
        summary = load_rt4ksr_weights(bare, load_path, param_key=param_key, strict=strict)
        get_root_logger().info(f'Loaded {type(bare).__name__} from {load_path}: {summary}.')
