"""iwae: the models, bounds, training and evaluation of Burda, Grosse & Salakhutdinov (ICLR 2016)."""

__version__ = "0.2.0"

from iwae.bounds import elbo, iwae_bound  # noqa: E402
from iwae.checkpoint import load_model  # noqa: E402
from iwae.objectives import objective  # noqa: E402

__all__ = ["elbo", "iwae_bound", "load_model", "objective", "__version__"]
