"""Config loading: YAML + base files, ${VAR:-default} expansion, --set overrides, key and type errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skelact.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    expand_env,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_and_types() -> None:
    cfg = config_from_dict({})
    assert isinstance(cfg, Config)
    assert cfg.optim.name == "sgd" and cfg.data.features == ["joint"] and cfg.overfit.epochs is None
    # YAML 1.1 reads 1e-3 as a string; a float field accepts it.
    assert config_from_dict({"optim": {"lr": "1e-3"}}).optim.lr == 1e-3
    assert config_from_dict({"optim": {"lr": 1}}).optim.lr == 1.0


def test_load_with_base_env_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "base.yaml", "data:\n  ann_file: ${SKELACT_DATA:-data}/penn.pkl\n  clip_len: 32\n"
                                   "optim:\n  lr: 0.1\n  epochs: 10\nmodel:\n  name: stgcnpp\n  kwargs: {width: 8}\n")
    _write(tmp_path / "child.yaml", "base: base.yaml\ndata:\n  features: [bone]\noptim:\n  epochs: 20\n")
    monkeypatch.delenv("SKELACT_DATA", raising=False)
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.data.ann_file == "data/penn.pkl"
    assert (cfg.data.clip_len, cfg.data.features, cfg.optim.epochs, cfg.optim.lr) == (32, ["bone"], 20, 0.1)
    assert cfg.model.kwargs == {"width": 8}

    monkeypatch.setenv("SKELACT_DATA", "/data")
    cfg = load_config(tmp_path / "child.yaml", ["optim.lr=0.05", "data.batch_size=32", "model.kwargs.width=4",
                                                "data.augment.scale=[0.9, 1.1]", "optim.clip_grad=null"])
    assert cfg.data.ann_file == "/data/penn.pkl"
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.model.kwargs["width"]) == (0.05, 32, 4)
    assert cfg.data.augment.scale == [0.9, 1.1] and cfg.optim.clip_grad is None


def test_expand_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", "x")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("B", raising=False)
    assert expand_env({"k": ["${A}/${B:-d}", "${EMPTY:-e}", 3]}) == {"k": ["x/d", "e", 3]}
    with pytest.raises(ConfigError, match="B is not set"):
        expand_env({"k": "${B}"})


def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        apply_overrides({}, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="'data.foo'"):
        config_from_dict({"data": {"foo": 1}})
    with pytest.raises(ConfigError, match="'bogus'"):
        config_from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({}, ["seed.x=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["optim.lr"])
    bad = _write(tmp_path / "bad.yaml", "data:\n  clip_lenn: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*data\.clip_lenn"):
        load_config(bad)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"data": {"clip_len": "long"}}, "data.clip_len: expected an integer"),
        ({"data": {"normalize": "zscore"}}, "data.normalize"),
        ({"data": {"features": ["joint", "angle"]}}, "unknown feature 'angle'"),
        ({"data": {"batch_size": 0}}, "data.batch_size: must be >= 1"),
        ({"data": {"with_score": "yes"}}, "expected true/false"),
        ({"data": {"augment": {"scale": [1.2, 0.8]}}}, "data.augment.scale"),
        ({"optim": {"name": "lamb"}}, "optim.name"),
        ({"optim": {"lr": -1}}, "optim.lr: must be in \\(0, 10\\]"),
    ],
)
def test_bad_values(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_round_trip(tmp_path: Path) -> None:
    cfg = config_from_dict({"optim": {"name": "adamw", "lr": 1e-3}, "data": {"layout": "penn13"}})
    (tmp_path / "c.yaml").write_text(config_to_yaml(cfg))
    assert load_config(tmp_path / "c.yaml") == cfg
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg)))) == cfg


def test_shipped_recipes_load_and_build_their_model() -> None:
    from skelact.models import create_model, list_models, model_info

    files = sorted((REPO / "configs").glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        cfg = load_config(f)
        assert cfg.data.ann_file.endswith(".pkl"), f
        assert cfg.model.name in list_models(), f
        layout = cfg.data.layout or {"penn": "penn13", "ucla": "ucla20", "ntu60": "coco17"}[f.name.split("_")[0]]
        dims = 3 if layout == "ucla20" else 2
        if model_info(cfg.model.name).input_kind == "heatmap":
            assert cfg.data.normalize == "none" and cfg.data.features == ["joint"] and cfg.data.with_score, f
            in_channels = 3
        else:
            in_channels = len(cfg.data.features) * dims + (1 if cfg.data.with_score and dims == 2 else 0)
        for kwargs in (cfg.model.kwargs, {**cfg.model.kwargs, **cfg.overfit.model_kwargs}):
            create_model(cfg.model.name, 10, layout, in_channels, **kwargs)
