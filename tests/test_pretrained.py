"""Slim generator files: the EMA generator survives export/load bit for bit; broken files fail clearly."""
import dataclasses

import pytest
import torch

from vitgan_lite import generator, modulation
from vitgan_lite.checkpoint import save_checkpoint
from vitgan_lite.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from vitgan_lite.data import SyntheticImages
from vitgan_lite.generator import Generator
from vitgan_lite.pretrained import FORMAT, export_generator, load_generator, main
from vitgan_lite.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real training checkpoint after 3 steps: the EMA weights differ from the raw G weights."""
    tcfg = TrainConfig.tiny().replace(batch_size=4, n_samples=4, ema_half_life_images=8)
    trainer = Trainer(GeneratorConfig.tiny(), DiscriminatorConfig.tiny(), tcfg, SyntheticImages(n=16), "cpu")
    for _ in range(3):
        trainer.train_step()
    trainer.meta["data"] = "/somewhere/on/a/machine/train_10k.npz"
    return save_checkpoint(trainer.state_dict(), tmp_path_factory.mktemp("run") / "ckpt_0000003.pt")


def generators_from(path):
    """Reference built another way: the raw and EMA generators straight from the checkpoint's dicts."""
    state = torch.load(path, weights_only=True)
    cfg = GeneratorConfig.from_dict(state["configs"]["generator"])
    raw, ema = Generator(cfg).eval(), Generator(cfg).eval()
    raw.load_state_dict(state["G"])
    ema.load_state_dict(state["G_ema"])
    return raw, ema


@torch.no_grad()
def test_round_trip_gives_the_ema_generator_exactly(checkpoint, tmp_path):
    out = export_generator(checkpoint, tmp_path / "g.pt")
    G, meta = load_generator(out)
    raw, ema = generators_from(checkpoint)
    z = torch.randn(4, G.cfg.latent_dim)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert torch.equal(G(z), ema(z))
    assert not torch.allclose(G(z), raw(z))            # the EMA weights, not the raw ones
    G_full, meta_full = load_generator(checkpoint)       # a training checkpoint is accepted too
    assert torch.equal(G_full(z), ema(z))
    assert meta == meta_full
    assert meta["step"] == 3 and meta["weights"] == "EMA" and meta["dataset"] == "train_10k.npz"
    assert meta["train"]["batch_size"] == 4 and meta["source"] == checkpoint.name
    assert out.stat().st_size < checkpoint.stat().st_size / 4     # slim: no D, no optimiser states


def test_slim_file_loads_with_weights_only_and_names_its_dataset(checkpoint, tmp_path):
    out = export_generator(checkpoint, tmp_path / "g.pt", dataset="CIFAR-10 (10k)")
    slim = torch.load(out, weights_only=True)
    assert slim["format"] == FORMAT and slim["meta"]["dataset"] == "CIFAR-10 (10k)"
    assert GeneratorConfig.from_dict(slim["config"]) == GeneratorConfig.tiny()
    _, ema = generators_from(checkpoint)
    assert slim["state_dict"].keys() == ema.state_dict().keys()
    assert all(torch.equal(slim["state_dict"][k], v) for k, v in ema.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]      # no temporary file left behind


def test_broken_files_fail_with_a_message_that_says_what_to_do(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt.*vitgan_lite.pretrained"):
        load_generator(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(export_generator(checkpoint, tmp_path / "g.pt").read_bytes()[:2000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match=f"{bad.name} is corrupt.*re-export"):
            load_generator(bad)
    unknown = tmp_path / "unknown.pt"
    torch.save({"weights": torch.zeros(3)}, unknown)
    with pytest.raises(ValueError, match="unknown.pt is neither"):
        load_generator(unknown)
    wrong = tmp_path / "wrong.pt"
    slim = torch.load(export_generator(checkpoint, tmp_path / "g.pt"), weights_only=True)
    slim["config"] = dataclasses.asdict(GeneratorConfig.tiny().replace(dim=32, heads=2))   # weights no longer fit
    torch.save(slim, wrong)
    with pytest.raises(ValueError, match="wrong.pt holds a generator this vitgan_lite cannot build"):
        load_generator(wrong)


def test_cli_exports_and_reports_errors(checkpoint, tmp_path, capsys):
    assert main([str(checkpoint.parent), str(tmp_path / "g.pt"), "--dataset", "synthetic"]) == 0
    assert "step 3, data synthetic" in capsys.readouterr().out
    assert load_generator(tmp_path / "g.pt")[1]["source"] == checkpoint.parent.name
    with pytest.raises(SystemExit):
        main([str(tmp_path / "g.pt"), str(tmp_path / "again.pt")])    # a slim file is not a checkpoint
    assert "not a vitgan_lite training checkpoint" in capsys.readouterr().err


def test_export_records_a_measured_fid_with_its_protocol(checkpoint, tmp_path, capsys):
    assert main([str(checkpoint), str(tmp_path / "g.pt"), "--fid", "61.25", "--fid-protocol", "1000 vs 10000"]) == 0
    meta = load_generator(tmp_path / "g.pt")[1]
    assert meta["fid"] == 61.25 and meta["fid_protocol"] == "1000 vs 10000"
    assert "fid" not in load_generator(export_generator(checkpoint, tmp_path / "plain.pt"))[1]
    with pytest.raises(SystemExit) as exc:
        main([str(checkpoint), str(tmp_path / "half.pt"), "--fid", "61.25"])     # a number without its protocol
    assert exc.value.code == 2 and "--fid-protocol" in capsys.readouterr().err
    assert not (tmp_path / "half.pt").exists()


def test_configs_saved_before_the_coordinates_field_load_with_linspace_grids():
    old = {k: v for k, v in dataclasses.asdict(GeneratorConfig.tiny()).items()
           if k not in ("attention", "spectral_norm", "coordinates")}      # what older files hold
    assert GeneratorConfig.from_dict(old) == GeneratorConfig.tiny().replace(coordinates="linspace")
    assert GeneratorConfig.tiny().coordinates == "cell"                   # new configs: cell centres
    for cfg in (GeneratorConfig.tiny(), GeneratorConfig.tiny().replace(coordinates="linspace", attention="l2")):
        assert GeneratorConfig.from_dict(dataclasses.asdict(cfg)) == cfg  # new files round-trip as saved


def test_an_old_training_checkpoint_loads_with_linspace_grids(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    del state["configs"]["generator"]["coordinates"]                      # as written before the field
    old = save_checkpoint(state, tmp_path / "ckpt_0000003.pt")
    G, _ = load_generator(old)                                            # through ema_generator_from_state
    assert G.cfg.coordinates == "linspace"
    assert Trainer.from_state(state, SyntheticImages(n=16), "cpu").gcfg.coordinates == "linspace"
    G_slim, _ = load_generator(export_generator(old, tmp_path / "g.pt"))  # the slim file keeps it
    assert G_slim.cfg.coordinates == "linspace"


def _old_coordinate_grid(side, kind=None, device=None):
    """coordinate_grid as it was before the `coordinates` option (any kind argument is ignored)."""
    axis = torch.linspace(-1.0, 1.0, side, device=device)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([yy, xx], dim=-1).reshape(side * side, 2)


@torch.no_grad()
def test_a_generator_file_older_than_the_coordinates_field_renders_bit_for_bit_as_before(checkpoint, tmp_path,
                                                                                       monkeypatch):
    slim = torch.load(export_generator(checkpoint, tmp_path / "new.pt"), weights_only=True)
    del slim["config"]["coordinates"]                                     # as files were written before the field
    old_file = save_checkpoint(slim, tmp_path / "old.pt")
    G, _ = load_generator(old_file)
    assert G.cfg.coordinates == "linspace"
    z = torch.randn(8, G.cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    images = [G(z), G.synthesize(G.style(z), patch_resolution=8)]
    old = Generator(G.cfg.replace(coordinates="cell")).eval()             # the old code: old grid everywhere
    old.load_state_dict(G.state_dict())
    monkeypatch.setattr(generator, "coordinate_grid", _old_coordinate_grid)
    monkeypatch.setattr(modulation, "coordinate_grid", _old_coordinate_grid)
    assert torch.equal(images[0], old(z))
    assert torch.equal(images[1], old.synthesize(old.style(z), patch_resolution=8))
