"""rt4ksr_arch: RT4KSR (Zamfir, Conde, Timofte, CVPRW 2023) as a BasicSR plugin.

Importing the package makes basicsr 1.4.2 work on today's stack (``compat``) and registers
the archs ``RT4KSR`` / ``RT4KSRDeploy``, the dataset ``OnlineBicubicPairedDataset`` and the model
``RT4KSRModel``. The public API: the networks and their config, the one loader, the one
inference runner, and the error base class every user-facing error derives from.
"""
from rt4ksr_arch import compat

compat.apply()

from rt4ksr_arch import archs, data, models  # noqa: E402,F401  (registers into basicsr)
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize  # noqa: E402
from rt4ksr_arch.checkpoint import Weights, load_model, load_rt4ksr_weights, read_weights, save_checkpoint  # noqa: E402
from rt4ksr_arch.config import RT4KSRConfig  # noqa: E402
from rt4ksr_arch.errors import CheckpointError, RT4KSRError  # noqa: E402
from rt4ksr_arch.inference import InferenceOptions, Upscaler, prepare_network  # noqa: E402

__version__ = '0.2.0'
__all__ = ['RT4KSR', 'RT4KSRDeploy', 'RT4KSRConfig', 'reparameterize', 'Weights', 'read_weights', 'load_model',
           'load_rt4ksr_weights', 'save_checkpoint', 'InferenceOptions', 'Upscaler', 'prepare_network',
           'RT4KSRError', 'CheckpointError']
