"""rt4ksr_arch: RT4KSR as a BasicSR plugin.

Importing the package makes basicsr 1.4.2 work on today's stack (``compat``) and registers
the archs ``RT4KSR`` / ``RT4KSRDeploy``, the datasets and the model ``RT4KSRModel``.
"""
from rt4ksr_arch import compat

compat.apply()

from rt4ksr_arch import archs, data, models  # noqa: E402,F401  (registers into basicsr)
from rt4ksr_arch.archs.rt4ksr_arch import RT4KSR, RT4KSRDeploy, reparameterize  # noqa: E402
from rt4ksr_arch.checkpoint import CheckpointError, load_rt4ksr_weights  # noqa: E402

__version__ = '0.1.0'
__all__ = ['RT4KSR', 'RT4KSRDeploy', 'reparameterize', 'load_rt4ksr_weights', 'CheckpointError']
