"""Config overrides: typed, bounded, unknown keys rejected with one clear message."""

import dataclasses
import json
import re
from typing import Literal

import pytest

from jaxdl.config import Sweep, as_overrides, help_lines, resolve, setting, to_dict
from jaxdl.errors import JaxdlError


@dataclasses.dataclass(frozen=True)
class Config:
    lr: float = setting(0.1, "learning rate", gt=0)
    epochs: int = setting(5, "epochs", ge=1)
    shuffle: bool = setting(True, "shuffle each epoch")
    init: Literal["he", "glorot"] = setting("he", "initialiser")
    name: str = setting("run", "a label")
    dropout: float = setting(0.5, "drop rate", ge=0, lt=1)

    def check(self):
        if self.name == "bad":
            raise JaxdlError("name may not be 'bad'")


def test_defaults_and_overrides():
    assert resolve(Config) == Config()
    cfg = resolve(Config, ["lr=0.01", "epochs=3", "shuffle=false", "init=glorot", "name=x=y"])
    assert (cfg.lr, cfg.epochs, cfg.shuffle, cfg.init, cfg.name) == (0.01, 3, False, "glorot", "x=y")
    assert resolve(Config, ["epochs=2", "epochs=7"]).epochs == 7  # later wins


@pytest.mark.parametrize(
    "pair, message",
    [
        ("lr=-1", "setting lr must be > 0, got -1.0"),
        ("lr=0", "setting lr must be > 0, got 0.0"),
        ("epochs=0", "setting epochs must be >= 1, got 0"),
        ("epochs=abc", "setting epochs: expected int, got 'abc'"),
        ("epochs=2.5", "setting epochs: expected int, got '2.5'"),
        ("lr=nan", "setting lr: expected float, got 'nan'"),
        ("lr=inf", "setting lr: expected float, got 'inf'"),
        ("shuffle=maybe", "setting shuffle: expected bool, got 'maybe'"),
        ("init=xavier", "setting init: expected one of he|glorot, got 'xavier'"),
        ("dropout=1", "setting dropout must be < 1, got 1.0"),
        ("depth=3", "unknown setting 'depth'; known settings: lr, epochs, shuffle, init"),
        ("lr", "--set expects key=value, got 'lr'"),
        ("=3", "--set expects key=value, got '=3'"),
        ("name=bad", "name may not be 'bad'"),
    ],
)
def test_bad_overrides_name_the_problem(pair, message):
    with pytest.raises(JaxdlError) as info:
        resolve(Config, [pair])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_help_lists_every_setting():
    lines = help_lines(Config)
    assert len(lines) == len(dataclasses.fields(Config))
    assert "lr (float, default 0.1): learning rate" in lines[0]


@dataclasses.dataclass(frozen=True)
class Listed:
    widths: tuple[int, ...] = setting((1, 2), "widths", ge=1)
    nets: tuple[Literal["mlp", "cnn"], ...] = setting(("mlp",), "networks")
    sweep: Sweep = setting(Sweep(), "written by the runner")


def test_tuple_settings_parse_check_print_and_round_trip_through_json():
    cfg = resolve(Listed, ["widths=4, 8,16", "nets=cnn,mlp"])
    assert (cfg.widths, cfg.nets) == ((4, 8, 16), ("cnn", "mlp"))
    assert resolve(Listed, ["widths="]).widths == ()
    for pair, message in (("widths=1,x", "setting widths: expected comma-separated int, got '1,x'"),
                          ("widths=3,0", "setting widths must be >= 1, got 0"),
                          ("nets=mlp,rnn", "setting nets: expected comma-separated one of mlp|cnn, got 'mlp,rnn'"),
                          ("sweep=lr=1", "setting sweep is written by the runner")):  # fmt: skip
        with pytest.raises(JaxdlError, match=re.escape(message)):
            resolve(Listed, [pair])
    assert help_lines(Listed)[0] == "  widths (comma-separated int, default '1,2'): widths"
    assert len(help_lines(Listed)) == 2  # the sweep is not a setting one gives
    sweep = Sweep.of({"lr": ["0.1", 0.3]})
    saved = json.loads(json.dumps(to_dict(resolve(Listed, ["widths=5,6"], sweep=sweep))))
    assert saved == {"widths": [5, 6], "nets": ["mlp"], "sweep": {"lr": [0.1, 0.3]}}
    again = resolve(Listed, as_overrides(saved), sweep=Sweep.of(saved["sweep"]))
    assert again == resolve(Listed, ["widths=5,6"], sweep=sweep)


def test_a_sweep_lists_its_combinations_last_key_fastest():
    sweep = Sweep.of({"lr": [1, 2], "wd": [0, 0.5, 1]})
    assert [tuple(c.values()) for c in sweep.combinations()] == [(1, 0), (1, 0.5), (1, 1), (2, 0), (2, 0.5), (2, 1)]
    assert Sweep().combinations() == [{}] and not Sweep() and sweep
    with pytest.raises(JaxdlError, match="a sweep holds numbers"):
        Sweep.of({"lr": ["fast"]})
