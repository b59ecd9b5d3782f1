"""What one training run is: ``TrainConfig``, the protocol of one member, with the allowed values of each option.

The defaults are the authors' procedure (yburda/iwae). The pipeline's schema
(workflow/schemas/config.schema.yaml) spells the same allowed values; tests/test_pipeline.py checks
that the two agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from iwae import objectives
from iwae.model import INITS
from iwae.optim import OPTIMIZERS
from iwae.schedule import schedule

DATA_ORDERS = ("fixed", "reshuffle")
MEMBER_FIELDS = ("objective", "seed", "init_from")  # what may differ between the members of a stack


@dataclass
class TrainConfig:
    """One model's training protocol. The defaults are the authors' procedure (yburda/iwae)."""

    dataset: str = "mnist"
    n_layers: int = 1
    objective: str = "iwae"
    k: int = 5
    seed: int = 0
    stages: list[int] | None = None  # None: all 8 stages (the paper)
    epoch_scale: float = 1.0  # epochs of stage i = round(3**i * epoch_scale), at least 1
    train_subset: int | None = None  # use only the first N training images (None: all)
    batch_size: int = 20
    optimizer: str = "published"  # Adam as optimizers.py ran it; or published_torch_order, paper_text
    init: str = "authors"  # authors: RandomState(123) per layer, as nnet.py; seeded: Glorot from the seed
    data_order: str = "fixed"  # fixed: minibatch i = rows 20i..20i+19 every epoch (the authors'); or reshuffle
    init_from: str | None = None  # a model.pt to continue from (the paper's Table 2)
    continue_state: bool = True  # with init_from: continue its optimiser state and random state (the authors')
    budget: str = "custom"  # the pipeline's name for this budget, recorded only

    def __post_init__(self):
        objectives.get(self.objective).check(self.k, self.n_layers)
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS),
                                     ("data_order", self.data_order, DATA_ORDERS), ("init", self.init, INITS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ValueError(f"train_subset ({self.train_subset}) must be at least batch_size ({self.batch_size})")
        schedule(self.stages, self.epoch_scale)  # validates stages and epoch_scale

    def shared(self) -> dict:
        """What every member of a stack must have in common."""
        return {k: v for k, v in asdict(self).items() if k not in MEMBER_FIELDS}


def check_stack(cfgs: list[TrainConfig]) -> None:
    """ValueError unless the members share everything but ``MEMBER_FIELDS``."""
    if not cfgs:
        raise ValueError("a stack needs at least one member")
    for c in cfgs[1:]:
        if c.shared() != cfgs[0].shared():
            diff = {k: (v, c.shared()[k]) for k, v in cfgs[0].shared().items() if c.shared()[k] != v}
            raise ValueError(f"members of one stack must share everything but {MEMBER_FIELDS}; they differ in {diff}")
