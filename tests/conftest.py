"""Import rt4ksr_arch before any test module imports basicsr: its compat fixes must come first."""
import rt4ksr_arch  # noqa: F401
