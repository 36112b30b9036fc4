"""bench: fair, reproducible, fast benchmarks of CNN backbones with fastai."""
from .config import ConfigError, RunConfig, make_config

__all__ = ["ConfigError", "RunConfig", "make_config"]
__version__ = "0.1.0"
