"""Model card and registry import: any fitting Keras model imports, misfits are refused."""

import json
import subprocess
import sys

import numpy as np
import pytest

from har.domain.card import ModelCard
from har.domain.errors import CardMismatchError, InputError
from har.runtime import model_store
from tests.helpers.cards import USER_CLASSES, make_card


def _card_file(tmp_path, card: ModelCard, **changes):
    data = card.model_dump(mode="json")
    data.update(changes)
    p = tmp_path / "card.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.slow  # 17-38 s on the shared machine (Keras model, CLI subprocess)
def test_user_model_imports_and_loads(user_model_files):
    model_path, card_path = user_model_files
    tag = model_store.import_model(model_path, card_path, name="user-model")
    loaded = model_store.load_model(tag)
    assert loaded.tag == tag
    assert loaded.card.classes == USER_CLASSES
    assert loaded.model.output_shape == (None, 11)
    assert 480_000 < loaded.model.count_params() < 520_000


@pytest.mark.slow  # 17-38 s on the shared machine (Keras model, CLI subprocess)
def test_import_model_cli_prints_tag_last(user_model_files):
    model_path, card_path = user_model_files
    out = subprocess.run(
        [sys.executable, "-m", "har", "import-model", str(model_path), "--card", str(card_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    tag = out.stdout.strip().splitlines()[-1]
    assert tag.startswith("user-model:")
    assert model_store.load_model(tag).tag == tag


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"classes": USER_CLASSES[:7]}, "'classes'"),
        ({"window": 100, "hop": 50}, "'window'"),
    ],
)
def test_card_that_does_not_fit_is_refused(user_model_files, tmp_path, changes, field):
    model_path, _ = user_model_files
    card = _card_file(tmp_path, make_card(USER_CLASSES, name="user-model"), **changes)
    with pytest.raises(CardMismatchError, match=field):
        model_store.import_model(model_path, card)


@pytest.mark.slow  # 17-38 s on the shared machine (Keras model, CLI subprocess)
def test_cli_refusal_names_the_field(user_model_files, tmp_path):
    model_path, _ = user_model_files
    card = _card_file(tmp_path, make_card(USER_CLASSES, name="user-model"), classes=["a", "b", "c"])
    out = subprocess.run(
        [sys.executable, "-m", "har", "import-model", str(model_path), "--card", str(card)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "'classes'" in out.stderr and "3 classes" in out.stderr and "11" in out.stderr


def test_invalid_card_fields_are_named(tmp_path):
    good = make_card(["a", "b"], name="user-model").model_dump(mode="json")
    for changes, word in [
        ({"channels": ["x"] * 6}, "channels"),
        ({"scaler": {"mean": [0] * 5, "scale": [1] * 5}}, "scaler"),
        ({"scaler": {"mean": [0] * 6, "scale": [1, 1, 1, 1, 1, 0]}}, "scale"),
        ({"classes": ["a", "a"]}, "unique"),
    ]:
        with pytest.raises(InputError, match=word):
            ModelCard.from_json(json.dumps({**good, **changes}))


def test_model_without_softmax_is_refused(tmp_path):
    import keras

    m = keras.Sequential([keras.Input((200, 6)), keras.layers.Flatten(), keras.layers.Dense(2)])
    m.save(tmp_path / "m.keras")
    card = _card_file(tmp_path, make_card(["a", "b"], name="user-model"))
    with pytest.raises(CardMismatchError, match="softmax"):
        model_store.import_model(tmp_path / "m.keras", card)


def test_wrong_channel_count_is_refused(tmp_path):
    import keras

    m = keras.Sequential(
        [keras.Input((200, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    m.save(tmp_path / "m.keras")
    with pytest.raises(CardMismatchError, match="'channels'"):
        model_store.import_model(
            tmp_path / "m.keras", _card_file(tmp_path, make_card(["a", "b"], name="user-model"))
        )


def test_unknown_tag_and_bad_files():
    with pytest.raises(InputError, match="not in the BentoML model store"):
        model_store.load_model("no-such-model:latest")
    with pytest.raises(InputError, match="not found"):
        model_store.load_keras("/nonexistent.keras")


@pytest.mark.slow  # 17-38 s on the shared machine (Keras model, CLI subprocess)
def test_compiled_model_matches_keras(user_model_files):
    from har.runtime.inference import CompiledModel

    model = model_store.load_keras(user_model_files[0])
    x = np.random.default_rng(0).normal(size=(5, 200, 6)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    for xla in (False, True):
        got = CompiledModel(model, xla=xla, max_batch_size=4)(x)  # split 4 + padded 1
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow  # 17-38 s on the shared machine (Keras model, CLI subprocess)
def test_reference_data_becomes_the_stored_models_reference_profile(
    user_model_files, tmp_path, capsys
):
    from har import cli
    from har.monitoring import read_reference_profile
    from har.monitoring.profiles import row_count

    model_path, card_path = user_model_files
    windows = np.random.default_rng(0).normal(0, 3, size=(12, 200, 6)).astype(np.float32)
    data = tmp_path / "train.npz"
    np.savez(data, windows=windows)
    assert (
        cli.main(
            [
                "import-model",
                str(model_path),
                "--card",
                str(card_path),
                "--reference-data",
                str(data),
                "--name",
                "user-ref",
            ]
        )
        == 0
    )
    tag = capsys.readouterr().out.strip().splitlines()[-1]
    stored = model_store.load_model(tag).reference_path
    assert stored is not None and stored.name == model_store.REFERENCE_FILE
    assert row_count(read_reference_profile(stored)) == 12

    np.savez(data, windows=windows[:5])  # `reference` replaces it
    assert cli.main(["reference", tag, str(data)]) == 0
    assert row_count(read_reference_profile(stored)) == 5


def test_train_reference_cli_passes_the_repository_folders_only_for_the_bundled_model(
    monkeypatch, tmp_path
):
    from har import cli
    from har.settings import PRETRAINED_DIR, PROJECT_ROOT
    from har.training import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "train_reference", lambda out, **kw: calls.append((out, kw)))
    assert cli.main(["train-reference"]) == 0
    assert cli.main(["train-reference", "--out", str(tmp_path), "--quick"]) == 0
    (bundled_out, bundled), (other_out, other) = calls
    assert bundled_out == PRETRAINED_DIR
    assert bundled["fixtures_dir"] == PROJECT_ROOT / "tests" / "fixtures"
    assert bundled["production_dir"] == PROJECT_ROOT / "data" / "production"
    assert other_out == tmp_path and other["quick"] is True
    assert other["fixtures_dir"] is None and other["production_dir"] is None


def test_the_model_worker_probes_its_own_compiled_model_and_refuses_no_softmax(
    tmp_path, monkeypatch
):
    """A stored model whose output is not a softmax (its file replaced after the import,
    which checks it) is loaded from the session's BentoML store, compiled and refused by
    the model worker; the probe runs once, on the worker's own compiled function."""
    import keras

    from har.runtime.inference import CompiledModel
    from har.serving.model_worker import model_worker
    from har.settings import Settings

    def dense(activation: str | None) -> object:
        return keras.Sequential(
            [keras.Input((200, 6)), keras.layers.Flatten(), keras.layers.Dense(2, activation)]
        )

    dense("softmax").save(tmp_path / "ok.keras")
    card = _card_file(tmp_path, make_card(["a", "b"], name="no-softmax"))
    tag = model_store.import_model(tmp_path / "ok.keras", card, name="no-softmax")
    dense(None).save(model_store.model_folder(tag) / model_store.MODEL_FILE)

    loads: list[bool] = []
    real_load = model_store.load_model

    def load_model(tag: str, *, probe: bool = True) -> model_store.LoadedModel:
        loads.append(probe)
        return real_load(tag, probe=probe)

    probed: list[object] = []
    real_check = model_store.check_probabilities

    def check_probabilities(run, card) -> None:
        probed.append(run)
        real_check(run, card)

    monkeypatch.setattr(model_store, "load_model", load_model)
    monkeypatch.setattr(model_store, "check_probabilities", check_probabilities)
    with pytest.raises(CardMismatchError, match=rf"stored model {tag}: .*softmax"):
        model_worker(Settings(runtime="tensorflow", xla=False, warmup="blocking"), tag)
    assert loads == [False]  # shapes only at load: no second compiled function for the probe
    assert len(probed) == 1 and isinstance(probed[0], CompiledModel)


def test_load_model_without_the_probe_still_checks_the_shapes(user_model_files, monkeypatch):
    model_path, card_path = user_model_files
    tag = model_store.import_model(model_path, card_path, name="user-model")
    probed: list[object] = []
    monkeypatch.setattr(model_store, "check_probabilities", lambda run, card: probed.append(run))
    assert model_store.load_model(tag, probe=False).card.classes == USER_CLASSES
    assert probed == []
    model_store.load_model(tag)
    assert len(probed) == 1
    folder = model_store.model_folder(tag)  # a card that does not fit is refused either way
    _card_file(folder, make_card(["a", "b"], name="user-model"))
    with pytest.raises(CardMismatchError, match="classes"):
        model_store.load_model(tag, probe=False)
