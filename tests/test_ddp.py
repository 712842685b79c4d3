"""torchrun with 2 CPU processes (gloo) trains the same model as one process with the same global batch."""

import subprocess
import sys
import textwrap

import pytest
import torch
from image_fixtures import write_idx_dataset

from zoo_train.checkpoint import load_checkpoint
from zoo_train.trainer import GlobalBatchSampler, TrainConfig, train


@pytest.mark.parametrize("length,batch", [(64, 16), (70, 16)])
def test_ranks_split_each_global_batch(length, batch):
    single = list(GlobalBatchSampler(length, batch, 0, 1, seed=5))
    ranks = [list(GlobalBatchSampler(length, batch, r, 2, seed=5)) for r in range(2)]
    assert sorted(single) == list(range(length))
    for step in range(length // batch):
        global_batch = single[step * batch : (step + 1) * batch]
        half = batch // 2
        assert ranks[0][step * half : (step + 1) * half] + ranks[1][step * half : (step + 1) * half] == global_batch
    assert [len(GlobalBatchSampler(length, batch, r, 2, 5)) for r in range(2)] == [len(r) for r in ranks]


def test_two_gloo_processes_interrupted_then_resumed_match_one_process(tmp_path):
    data_root = tmp_path / "data"
    write_idx_dataset(data_root / "fashion-mnist", n_train=288, n_test=32)
    # The smoke preset trains on 256 images: batch 16 gives equal halves on both ranks at every step.
    # fp32 pinned: on a CPU with native bf16 "auto" trains the CNNs in bf16, whose rounding differs between one
    # batch of 16 and two halves of 8 by far more than the tolerance below, which holds for fp32's summation order.
    settings = dict(
        model="lenet5", preset="smoke", epochs=2, batch_size=16, device="cpu", precision="fp32", seed=7, show_progress=False
    )
    settings["model_overrides"] = {"dropout": 0.0}
    one_run = train(TrainConfig(**settings, data_dir=data_root, out=tmp_path / "one"))
    one = load_checkpoint(one_run / "checkpoints" / "last.pt")
    assert one["train_state"]["step"] > 0

    # Under torchrun, stopped as Ctrl-C stops it once its first epoch is saved, then `zoo-train --resume`d under
    # torchrun: the same model as one process trained without a stop, so each epoch under DDP was the same.
    interrupt = tmp_path / "interrupt.py"
    interrupt.write_text(
        textwrap.dedent(f"""
        from pathlib import Path
        from zoo_train.trainer import Run, TrainConfig, train
        real_end_epoch = Run.end_epoch
        def end_epoch_then_stop(run, epoch, improved):  # as Ctrl-C would, on every rank, once epoch 1 is saved
            real_end_epoch(run, epoch, improved)
            raise KeyboardInterrupt
        Run.end_epoch = end_epoch_then_stop
        try:
            train(TrainConfig(**{settings!r}, data_dir=Path({str(data_root)!r}), out=Path({str(tmp_path / "two")!r})))
        except KeyboardInterrupt:
            pass
    """)
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    first = subprocess.run([*torchrun, str(interrupt)], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert load_checkpoint(tmp_path / "two/lenet5/checkpoints/last.pt")["train_state"]["epoch"] == 1
    cli_args = ["lenet5", "--preset", "smoke", "--data-dir", str(data_root), "--epochs", "2", "--batch-size", "16"]
    cli_args += [
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--seed",
        "7",
        "--quiet",
        "--set",
        "dropout=0.0",
        "--out",
        str(tmp_path / "two"),
        "--resume",
    ]
    resumed = subprocess.run([*torchrun, "-m", "zoo_train.cli", *cli_args], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    two = load_checkpoint(tmp_path / "two/lenet5/checkpoints/last.pt")
    assert two["train_state"]["step"] == one["train_state"]["step"]
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # Only rank 0 writes: one metrics log with one line per epoch.
    assert len((tmp_path / "two/lenet5/metrics.jsonl").read_text().splitlines()) == 2


def _average_on_rank(rank: int, init_file: str, results) -> None:
    import torch.distributed as dist

    from zoo_train.tasks.base import average_gradients

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    layer = torch.nn.Linear(3, 2)
    for p in layer.parameters():
        p.grad = torch.full_like(p, float(rank + 1))  # rank 0 has 1s, rank 1 has 2s
    average_gradients(layer)
    grads = []
    for p in layer.parameters():
        assert p.grad is not None  # set above, averaged in place
        grads.append(p.grad.clone())
    results[rank] = grads
    dist.destroy_process_group()


def test_gan_gradients_are_averaged_over_ranks(tmp_path):
    """The GAN steps its two players outside DDP's forward, so it averages their gradients itself."""
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_average_on_rank, args=(str(tmp_path / "rendezvous"), results), nprocs=2, join=True)
        for rank in range(2):
            for grad in results[rank]:
                torch.testing.assert_close(grad, torch.full_like(grad, 1.5))


def test_dcgan_trains_under_torchrun(tmp_path):
    data_root = tmp_path / "data"
    write_idx_dataset(data_root / "fashion-mnist", n_train=128, n_test=32)
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "zoo_train.cli",
            "dcgan",
            "--preset",
            "smoke",
            "--data-dir",
            str(data_root),
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert load_checkpoint(tmp_path / "two/dcgan/checkpoints/last.pt")["train_state"]["step"] > 0
    assert (tmp_path / "two/dcgan/samples/epoch_001.png").is_file()
