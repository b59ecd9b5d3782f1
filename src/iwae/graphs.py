"""Recording a training step as a CUDA graph and replaying it (``iwae train --step captured`` or ``fused``).

A step of these small models is bound by kernel launches and Python (~1-3 ms however large K is);
a CUDA graph launches the whole step -- minibatch selection, binarisation, noise, forward, backward
and the optimiser update -- as one unit. The step must not synchronise with the host and must keep
its tensors in place (``iwae.stack.Stack`` writes it so); the members' generators are registered with
the graph so that every replay draws new numbers.

Measured on an NVIDIA H200 (docs/gpu: `make gpu-check`): 2-12x faster per step than the eager step, with
the same losses and parameters as it (tests/test_gpu.py); `--step auto`, the default, uses it on CUDA.
"""

from __future__ import annotations

from typing import Callable

import torch


def supported() -> bool:
    """Whether this torch can record a step that draws from its own generators in a CUDA graph."""
    return hasattr(torch.cuda, "CUDAGraph") and hasattr(torch.cuda.CUDAGraph, "register_generator_state")


class CapturedStep:
    """Call once per training step: the first ``warmup`` calls run ``step`` eagerly on a side stream
    (as CUDA graphs require before capture; they are real steps), the next records it and every
    call from then on replays the recording."""

    def __init__(self, step: Callable[[], None], generators: list[torch.Generator], device: torch.device,
                 warmup: int = 3):
        if not supported():
            raise RuntimeError(
                f"this torch ({torch.__version__}) cannot record steps that draw from their own generators in a "
                f"CUDA graph (CUDAGraph.register_generator_state is missing); use --step eager")
        self.step, self.generators, self.device, self.warmup = step, generators, device, warmup
        self.calls, self.graph = 0, None
        self.side = torch.cuda.Stream(device)

    def __call__(self) -> None:
        if self.graph is None and self.calls < self.warmup:
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                self.step()
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.calls += 1
            return
        if self.graph is None:
            graph = torch.cuda.CUDAGraph()
            for g in self.generators:
                graph.register_generator_state(g)
            with torch.cuda.graph(graph):  # records the step without running it
                self.step()
            self.graph = graph
        self.graph.replay()

