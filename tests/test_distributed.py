"""Several processes (DDP, gloo on the CPU, 2 processes): identical weights, sharded data, exact
resume, R1, and the CLI under torchrun writing from process 0 only."""
import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vitgan_lite import distributed, train
from vitgan_lite.checkpoint import list_checkpoints, load_latest
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages, synthetic_images
from vitgan_lite.data_order import DataOrder, load_batch
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
RANKS = 2
TINY = TrainConfig.tiny().replace(batch_size=4, n_samples=4, log_every=1)   # 2 images per process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(worker, out: Path) -> list[dict]:
    """Run worker(out) in 2 gloo processes as torchrun would; each returns its results via a file."""
    mp.spawn(_join, args=(worker, out, free_port()), nprocs=RANKS)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(RANKS)]


def _join(rank: int, worker, out: Path, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(RANKS),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TQDM_DISABLE="1")
    with distributed.process_group(torch.device("cpu")):
        torch.save(worker(out), out / f"rank{rank}.pt")


def make(**train) -> Trainer:
    return Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), TINY.replace(**train),
                   SyntheticImages(n=24), "cpu")


def weights(trainer) -> dict:
    """G's and D's state (D's with its spectral-norm buffers u and sigma_init) and the EMA G's."""
    return {"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.ema_generator().state_dict()}


def recording(fn, seen: list):
    """`fn` that also appends each result to `seen`."""
    def wrapper(*args):
        seen.append(fn(*args))
        return seen[-1]
    return wrapper


def one_step_worker(out: Path) -> dict:
    trainer = make()
    indices, latents = [], []
    trainer.data_order.next_indices = recording(trainer.data_order.next_indices, indices)
    trainer.latents = recording(trainer.latents, latents)
    logs = trainer.train_step()
    local = {key: logs[key].item() for key in ("loss_D", "loss_G")}
    return {"weights": weights(trainer), "indices": indices, "latents": latents, "local": local,
            "read": trainer.read_logs(logs), "r1": r1_gradients(), "micro": micro_batch_gradients()}


def micro_batch_gradients() -> list[list]:
    """G's and D's gradients after a step in one pass and in 2 slices (micro_batches; 1 image each
    here): DDP must average once, after the last slice. Without random draws besides z and the data."""
    grads = []
    for micro_batches in (1, 2):
        trainer = make(micro_batches=micro_batches, augment="", bcr=False)
        trainer.train_step()
        grads.append([p.grad.clone() for net in (trainer.G, trainer.D) for p in net.parameters()])
    return grads


def r1_gradients() -> tuple[list, list]:
    """D's gradients of L_D + R1 (a double backward) through DDP, and the same computed without DDP
    on each process and averaged by hand."""
    trainer = make(r1_gamma=1.0, augment="", bcr=False)
    plain = copy.deepcopy(trainer.D)
    real = load_batch(trainer.dataset, trainer.data_order.next_indices())
    with torch.no_grad():
        fake = trainer.G(trainer.latents(real.shape[0]))
    grads = []
    for forward in (trainer.d_forward, plain):
        trainer.d_forward = forward
        terms = trainer.discriminator_losses(real, fake)
        (terms["adv"] + terms["r1"]).backward()
        grads.append([p.grad.clone() for p in forward.parameters()])
    for grad in grads[1]:
        dist.all_reduce(grad)
        grad /= RANKS
    return grads[0], grads[1]


@pytest.fixture(scope="module")
def one_step(tmp_path_factory) -> list[dict]:
    return spawn(one_step_worker, tmp_path_factory.mktemp("one_step"))


def assert_equal_states(a: dict, b: dict) -> None:
    for net in a:
        for name, tensor in a[net].items():
            assert torch.equal(tensor, b[net][name]), f"{net}.{name}"


def test_after_a_step_every_process_holds_the_same_weights(one_step):
    rank0, rank1 = one_step
    assert_equal_states(rank0["weights"], rank1["weights"])       # G, D with its u buffers, EMA G
    initial = make().D.state_dict()                                  # the same seed: the weights before the step
    assert not any(torch.equal(tensor, initial[name]) for name, tensor in rank0["weights"]["D"].items()
                   if name.endswith(".original"))
    assert any(name.endswith(".u") for name in rank0["weights"]["D"])
    # each process drew its own z and computed its own loss; read_logs averages them (the global batch's)
    assert not torch.equal(rank0["latents"][0], rank1["latents"][0])
    assert rank0["local"]["loss_D"] != rank1["local"]["loss_D"]
    assert rank0["read"] == rank1["read"]
    assert rank0["read"]["loss_D"] == pytest.approx((rank0["local"]["loss_D"] + rank1["local"]["loss_D"]) / 2)


def test_processes_see_disjoint_slices_of_the_global_batch(one_step):
    (first,), (second,) = (result["indices"] for result in one_step)
    assert len(first) == len(second) == TINY.batch_size // RANKS
    assert torch.equal(torch.cat([first, second]), DataOrder(24, TINY.batch_size, TINY.seed).next_indices())


def test_r1_double_backward_through_ddp_averages_the_gradients(one_step):
    for ddp, by_hand in (result["r1"] for result in one_step):
        for a, b in zip(ddp, by_hand):
            torch.testing.assert_close(a, b)


def test_micro_batches_under_ddp_average_the_whole_batch_gradients(one_step):
    (whole0, sliced0), (whole1, sliced1) = (result["micro"] for result in one_step)
    for a, b, c in zip(whole0, sliced0, sliced1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7)     # slices: the one-pass gradients
        assert torch.equal(b, c)                                   # averaged over both processes
    assert all(torch.equal(a, b) for a, b in zip(whole0, whole1))   # the one-pass step's too


def test_data_order_shards_every_global_batch():
    one = DataOrder(10, 4, seed=3)
    shards = [DataOrder(10, 4, seed=3, rank=rank, world_size=2) for rank in range(2)]
    for _ in range(5):                                               # crosses epochs (2 batches each)
        assert torch.equal(torch.cat([shard.next_indices() for shard in shards]), one.next_indices())
    assert shards[1].state_dict() == one.state_dict()
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        DataOrder(10, 4, seed=3, rank=0, world_size=3)


def resume_worker(out: Path) -> dict:
    straight = make()
    straight.run(4)
    own = out / f"run{dist.get_rank()}"                             # process 1 must leave its own empty
    make(checkpoint_every=100).run(2, own)                          # ends with ckpt_0000002.pt
    dist.barrier()                                                   # process 0 has written it
    _, state = load_latest(out / "run0")
    resumed = Trainer.from_state(state, SyntheticImages(n=24), "cpu")
    resumed.run(4, own)
    return {"straight": weights(straight), "resumed": weights(resumed),
            "adam": [s["exp_avg_sq"] for s in resumed.opt_D.state_dict()["state"].values()],
            "adam_straight": [s["exp_avg_sq"] for s in straight.opt_D.state_dict()["state"].values()]}


def test_a_resumed_two_process_run_equals_an_uninterrupted_one(tmp_path):
    rank0, rank1 = spawn(resume_worker, tmp_path)
    for result in (rank0, rank1):
        assert_equal_states(result["straight"], result["resumed"])  # bit-identical on CPU
        assert all(torch.equal(a, b) for a, b in zip(result["adam"], result["adam_straight"]))
    assert_equal_states(rank0["resumed"], rank1["resumed"])
    assert [p.name for p in list_checkpoints(tmp_path / "run0")] == ["ckpt_0000004.pt", "ckpt_0000002.pt"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run0" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert not (tmp_path / "run1").exists()                          # process 1 wrote nothing


def torchrun_train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m vitgan_lite.train --preset tiny ...` on 16 images, CPU."""
    data = tmp_path / "small.npz"
    np.savez(data, x=synthetic_images(16).permute(0, 2, 3, 1).numpy())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
           "-m", "vitgan_lite.train", "--preset", "tiny", "--data", str(data), "--device", "cpu",
           "--threads", "1", *args]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_cli_under_torchrun_prints_and_writes_on_process_0_only(tmp_path):
    out = tmp_path / "run"
    proc = torchrun_train(tmp_path, "--steps", "2", "--batch-size", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("vitgan-train: 2 processes, cpu, G 0.13M / D 0.08M params") == 1, proc.stdout
    assert proc.stdout.count("[done] step=2") == 1
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs] == [1, 2]                # one writer: no line twice
    assert sorted(p.name for p in out.iterdir()) == ["ckpt_0000002.pt", "log.jsonl", "samples"]
    assert [p.name for p in (out / "samples").iterdir()] == ["step_0000002.png"]


def test_one_process_without_torchrun(tmp_path, capsys):
    assert not distributed.launched() and distributed.world_size() == 1
    trainer = make()
    assert trainer.g_forward is trainer.G and trainer.d_forward is trainer.d_forward_frozen is trainer.D
    data = tmp_path / "small.npz"
    np.savez(data, x=synthetic_images(8).permute(0, 2, 3, 1).numpy())
    assert train.main(["--preset", "tiny", "--data", str(data), "--steps", "1", "--batch-size", "4",
                       "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.startswith("vitgan-train: 1 process, cpu, G 0.13M / D 0.08M params")


def test_cli_under_torchrun_refuses_a_batch_it_cannot_split(tmp_path):
    proc = torchrun_train(tmp_path, "--steps", "2", "--batch-size", "5", "--out", str(tmp_path / "run"))
    assert proc.returncode != 0
    assert "batch_size=5 (the global batch) is not divisible by the 2 processes" in proc.stderr
