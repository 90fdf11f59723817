"""One-line warnings that name the fix: a named loss on outputs it was not made for, labels given
as floats or one-hot rows, early stopping with nothing to validate on (fit and `train`)."""
import warnings

import numpy as np
import pytest

import nn
from nn.cli import main
from nn.data import stratified_split
from nn.datasets import load_digits
from nn.diagnostics import TrainingWarning
from nn.train import fit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 4)).astype(np.float32)
Y = np.arange(30) % 3


def _fit(labels=Y, output_activation="sigmoid", loss="bce", **kwargs):
    model = nn.MLP([4, 5, 3], output_activation=output_activation, seed=0)
    history = fit(model, loss, nn.SGD(model, lr=0.1), (X, labels), epochs=2, verbose=False, **kwargs)
    return model, history


@pytest.mark.parametrize("loss, activation, fix", [
    ("ce", "sigmoid", "build the model with output_activation=None, or use loss 'bce'"),
    ("ce", "softmax", "build the model with output_activation=None"),
    ("bce", "softmax", "build the model with output_activation='sigmoid'"),
    ("bce_logits", "sigmoid", "build the model with output_activation=None, or use loss 'bce'"),
])
def test_a_loss_on_outputs_it_was_not_made_for_warns_with_the_fix(loss, activation, fix):
    with pytest.warns(TrainingWarning, match=f"fit: loss '{loss}' takes .* the model gives {activation} outputs") \
            as caught:
        _fit(output_activation=activation, loss=loss)
    message = str(caught[0].message)
    assert message.endswith(fix) and "\n" not in message


@pytest.mark.parametrize("loss, activation", [("bce", "sigmoid"), ("ce", None), ("bce_logits", None),
                                              ("mse", "sigmoid")])
def test_a_loss_on_the_outputs_it_takes_does_not_warn(loss, activation):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(output_activation=activation, loss=loss)


def test_whole_number_float_labels_train_as_integers_with_a_warning():
    with pytest.warns(TrainingWarning, match=r"labels are float64 whole numbers; .*labels\.astype\(int\)"):
        _, history = _fit(Y.astype(np.float64))
    assert history["loss"] == _fit(Y)[1]["loss"]


def test_one_hot_labels_train_as_class_indices_with_a_warning_naming_argmax():
    with pytest.warns(TrainingWarning, match=r"fit: labels of shape \(30, 3\) are one-hot rows.*"
                                             r"labels\.argmax\(axis=1\)"):
        _, history = _fit(np.eye(3)[Y])
    assert history["loss"] == _fit(Y)[1]["loss"]


def test_one_hot_validation_labels_are_named_as_such():
    with pytest.warns(TrainingWarning, match=r"fit \(validation\): labels of shape \(30, 3\) are one-hot"):
        _fit(validation=(X, np.eye(3, dtype=np.int64)[Y]))


def test_float_labels_that_are_not_whole_numbers_are_refused():
    labels = Y.astype(np.float64)
    labels[4] = 1.5
    with pytest.raises(ValueError, match=r"fit: labels must be integer class indices, got float64 label 1\.5 "
                                         r"at position 4, which is not a whole number"):
        _fit(labels)


def test_two_dimensional_labels_that_are_not_one_hot_are_refused_with_argmax():
    with pytest.raises(ValueError, match=r"shape \(30, 3\) whose rows are not one-hot; .*labels\.argmax\(axis=1\)"):
        _fit(np.eye(3)[Y] * 0.9)


def test_early_stopping_without_validation_data_warns():
    with pytest.warns(TrainingWarning, match=r"early_stopping without a validation set watches the training loss"
                                             r".*validation=\(x_val, y_val\)"):
        _fit(early_stopping=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(early_stopping=1, validation=(X, Y))


def test_train_early_stopping_without_validation_holds_out_a_tenth(capsys):
    assert main(["train", "--epochs", "1", "--hidden", "8", "--early-stopping", "1", "--loss", "ce"]) == 0
    out, err = capsys.readouterr()
    ds = load_digits()
    held_out = len(stratified_split(ds.x_train, ds.y_train, 0.1, seed=0)[1][1])
    assert f"training on {len(ds.y_train) - held_out}, validating on {held_out}," in out
    assert err == ("warning: --early-stopping without --validation: holding out 10% of the training set "
                   "(stratified) to watch; set --validation to choose the share\n")


def test_train_with_validation_and_early_stopping_does_not_warn(capsys):
    assert main(["train", "--epochs", "1", "--hidden", "8", "--early-stopping", "1", "--validation", "0.2"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "validating on 0," not in out
