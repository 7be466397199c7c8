"""A DataLoader that Lightning can checkpoint mid-epoch, so a resumed run reads the batches the uninterrupted one
would have read, in the same order, with the same per-epoch draws.

Lightning saves ``state_dict()`` of a training loader that has one (``fit_loop``'s ``combined_loader`` entry of
``lightning/last.ckpt``) and calls ``load_state_dict`` before it iterates again. The state is small:

- ``epoch``: the pass over the data in progress; before each pass the loader tells its dataset and sampler the
  epoch (``set_epoch``, where they have one), so per-epoch draws (the phase=rag context roll) restart right;
- ``generator``: the loader's generator as it was when the pass started. That generator draws everything random
  about a pass: the shuffle (``RandomSampler`` or transformers' ``LengthGroupedSampler``, both given the same
  generator) and the workers' base seed; restoring it replays the pass's draws exactly;
- ``batches``: how many batches of the pass were handed out; a restored pass skips their indices without
  loading them.

Iterating it is iterating a plain ``torch.utils.data.DataLoader``: an uninterrupted run draws and reads exactly
what it did before (the class only records where it is).

    loader = ResumableDataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(42))
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader


class _SkipFirst:
    """The batches of index lists of a pass, less the first ``n`` (already trained on before the interruption)."""

    def __init__(self, batches: Iterable[list[int]], n: int) -> None:
        self.batches, self.n = batches, n

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.batches), self.n, None)

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.n)


class ResumableDataLoader(DataLoader):
    """``DataLoader`` with ``state_dict``/``load_state_dict`` (the position in the current epoch); see the module.

    Takes ``DataLoader``'s arguments; ``generator`` is required (its state is the shuffle's) and
    ``persistent_workers`` must stay off (a pass then always builds a fresh iterator from this loader)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.generator is None:
            raise ValueError(
                "ResumableDataLoader needs generator=torch.Generator(): its state is the shuffle's"
            )
        if self.persistent_workers:
            raise ValueError(
                "ResumableDataLoader: persistent_workers=True is not supported (a pass is one iterator)"
            )
        self._epoch = 0  # the pass in progress (or the next one, before the first)
        self._pass_start: torch.Tensor | None = None  # generator state when the pass began
        self._skipped = 0  # batches of the pass skipped at its start (restored passes)
        self._iterator_of_pass: Any = None
        self._restored: dict[str, Any] | None = None
        self._building = False

    @property
    def _index_sampler(self) -> Any:
        sampler = super()._index_sampler
        return _SkipFirst(sampler, self._skipped) if self._building and self._skipped else sampler

    def _set_epoch(self, epoch: int) -> None:
        parts = (self.dataset, self.sampler, getattr(self.batch_sampler, "sampler", None))
        for part in {id(p): p for p in parts if hasattr(p, "set_epoch")}.values():
            part.set_epoch(epoch)

    def __iter__(self) -> Any:
        if self._restored is not None:
            state, self._restored = self._restored, None
            self._epoch, self._skipped = int(state["epoch"]), int(state["batches"])
            self.generator.set_state(state["generator"])
        else:
            if self._iterator_of_pass is not None:  # every pass after the first is a new epoch
                self._epoch += 1
            self._skipped = 0
        self._set_epoch(self._epoch)
        self._pass_start = self.generator.get_state()
        self._building = True  # the iterator reads _index_sampler while it is built (and only then)
        try:
            self._iterator_of_pass = super().__iter__()
        finally:
            self._building = False
        return self._iterator_of_pass

    def state_dict(self) -> dict[str, Any]:
        """Where this loader is: the pass in progress and how far into it, or the next pass when this one is done."""
        if self._restored is not None:  # restored, not iterated since: still that position
            return dict(self._restored)
        if self._iterator_of_pass is None:  # never iterated
            return {"epoch": self._epoch, "generator": self.generator.get_state(), "batches": 0}
        done = self._skipped + self._iterator_of_pass._num_yielded
        if done >= len(
            self
        ):  # the pass is over: resume at the start of the next (the generator is there now)
            return {"epoch": self._epoch + 1, "generator": self.generator.get_state(), "batches": 0}
        return {"epoch": self._epoch, "generator": self._pass_start.clone(), "batches": done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`) at the next ``iter()``."""
        missing = {"epoch", "generator", "batches"} - set(state)
        if missing:
            raise ValueError(
                f"data loader state: keys {sorted(missing)} missing (not a ResumableDataLoader state)"
            )
        self._restored = {
            "epoch": int(state["epoch"]),
            "generator": state["generator"],
            "batches": int(state["batches"]),
        }
