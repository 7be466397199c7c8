"""ResumableDataLoader: iterating it is iterating a plain DataLoader, and a loader restored from its state at any
point of any epoch hands out exactly the batches (and per-epoch draws) the uninterrupted one did from there on."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler

from adaragct.data.resumable import ResumableDataLoader

N, BATCH, EPOCHS = 11, 2, 3  # 6 batches an epoch, the last one short


class EpochDataset(Dataset):
    """Item i of epoch e is (i, e, a draw from (e, i)): like the context roll, it depends on the epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> torch.Tensor:
        draw = torch.randint(1000, (1,), generator=torch.Generator().manual_seed(self.epoch * 100 + index))
        return torch.tensor([index, self.epoch, int(draw)])


def _loader(cls: type, grouped: bool, workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(42)
    dataset = EpochDataset()
    sampler = LengthGroupedSampler(BATCH, lengths=[(i * 7) % 5 for i in range(N)], generator=generator)
    return cls(
        dataset,
        batch_size=BATCH,
        shuffle=not grouped,
        sampler=sampler if grouped else None,
        generator=generator,
        num_workers=workers,
    )


def _epochs(loader: DataLoader, epochs: int = EPOCHS) -> list[list[list[list[int]]]]:
    return [[batch.tolist() for batch in loader] for _ in range(epochs)]


@pytest.mark.parametrize("grouped", [False, True], ids=["random", "length_grouped"])
def test_iterating_is_iterating_a_plain_dataloader(grouped: bool) -> None:
    class PlainEpochs(DataLoader):  # a plain DataLoader, told the epoch as our training loop told it before
        def __iter__(self):
            self.dataset.set_epoch(self.passes)
            self.passes += 1
            return super().__iter__()

    plain = _loader(PlainEpochs, grouped)
    plain.passes = 0
    ours = _epochs(_loader(ResumableDataLoader, grouped))
    assert ours == _epochs(plain)
    order = [[row[0] for batch in epoch for row in batch] for epoch in ours]
    assert [sorted(o) for o in order] == [list(range(N))] * EPOCHS
    assert order[0] != order[1] and [batch[0][1] for batch, *_ in ours] == [0, 1, 2]  # reshuffled; epoch told


@pytest.mark.parametrize("grouped", [False, True], ids=["random", "length_grouped"])
def test_a_restored_loader_continues_exactly_from_any_batch_of_any_epoch(grouped: bool) -> None:
    reference = [batch for epoch in _epochs(_loader(ResumableDataLoader, grouped)) for batch in epoch]
    per_epoch = len(reference) // EPOCHS
    for stop in range(len(reference)):  # interrupt after `stop` batches
        first = _loader(ResumableDataLoader, grouped)
        taken = 0
        while taken < stop:
            for _ in first:
                taken += 1
                if taken == stop:
                    break
        state = first.state_dict()
        resumed = _loader(ResumableDataLoader, grouped)  # a new process: fresh generator, dataset at epoch 0
        resumed.load_state_dict(state)
        left = EPOCHS - stop // per_epoch
        rest = [batch for epoch in _epochs(resumed, left) for batch in epoch]
        assert rest == reference[stop:], f"after {stop} batches"


def test_worker_processes_resume_with_the_epoch_and_order() -> None:
    reference = [
        batch for epoch in _epochs(_loader(ResumableDataLoader, True, workers=2), 2) for batch in epoch
    ]
    first = _loader(ResumableDataLoader, True, workers=2)
    for _ in first:  # epoch 0
        pass
    iterator = iter(first)  # epoch 1, two batches in
    next(iterator), next(iterator)
    state = first.state_dict()
    del iterator
    resumed = _loader(ResumableDataLoader, True, workers=2)
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == reference[8:]
    assert state["epoch"] == 1 and state["batches"] == 2


def test_state_is_what_a_weights_only_checkpoint_can_hold(tmp_path) -> None:
    loader = _loader(ResumableDataLoader, True)
    next(iter(loader))
    torch.save({"loader": loader.state_dict()}, tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)["loader"]
    assert state["epoch"] == 0 and state["batches"] == 1 and state["generator"].dtype == torch.uint8


def test_needs_a_generator_and_a_valid_state() -> None:
    with pytest.raises(ValueError, match="needs generator="):
        ResumableDataLoader(EpochDataset(), batch_size=2, shuffle=True)
    with pytest.raises(ValueError, match=r"keys \['batches', 'generator'\] missing"):
        _loader(ResumableDataLoader, True).load_state_dict({"epoch": 0})
