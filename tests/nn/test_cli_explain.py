"""`python -m nn explain`, and `python -m nn train --diagnostics / --detect-anomaly`, run in a
subprocess as a user would."""
import re

from tests.nn.test_cli import assert_user_error, run_cli

FAST = ["--epochs", "2", "--hidden", "20"]
STEP = re.compile(r"^\s*(\d+)\. (\S+) +g (\([^)]*\))", re.M)


def test_explain_lists_the_lecture_networks_primitives_right_to_left():
    proc = run_cli("explain")
    assert proc.returncode == 0, proc.stderr
    steps = STEP.findall(proc.stdout)
    # the logistic cost (its two log terms, each clipped), then the output layer, then the hidden
    # one: newest node first, the exact reverse of the order the forward pass made them in
    assert [name for _, name, _ in steps] == ["sum", "negative", "add", "multiply", "multiply", "log",
                                              "clip", "subtract", "log", "clip", "linear[sigmoid]",
                                              "linear[sigmoid]"]
    assert [int(n) for n, _, _ in steps] == list(range(1, 13))
    assert steps[-2][2] == "(4, 10)" and steps[-1][2] == "(4, 5)"   # delta_out, then delta_h
    # parameters appear under their dotted names where their gradients come out
    assert re.search(r"-> linear \(4, 5\), output\.weight \(5, 10\), output\.bias \(10,\)", proc.stdout)
    assert re.search(r"-> hidden\.0\.weight \(64, 5\), hidden\.0\.bias \(5,\)\s*$", proc.stdout, re.M)
    assert "rule: delta = g * act'(z)" in proc.stdout
    assert "step 11: the output layer: delta_out" in proc.stdout
    assert "step 12: the hidden layer: delta_h = (delta_out W_out^T) * a_h (1 - a_h)" in proc.stdout


def test_explain_writes_the_graph_as_dot_text(tmp_path):
    path = tmp_path / "graph.dot"
    proc = run_cli("explain", "--hidden", "3", "--samples", "2", "--dot", path)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.startswith("digraph autograd {") and text.rstrip().endswith("}")
    for label in ('"hidden.0.weight\\n(64, 3)"', '"output.bias\\n(10,)"', '"linear\\n(2, 3)"',
                  '"linear\\n(2, 10)"', '"sum\\nscalar"'):
        assert label in text
    assert re.search(r"-> hidden\.0\.weight \(64, 3\)", proc.stdout)
    assert f"wrote the graph to {path}" in proc.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["graph.dot"]        # no temporary left


def test_explain_dot_into_a_missing_folder_is_one_sentence(tmp_path):
    assert_user_error(run_cli("explain", "--dot", tmp_path / "nowhere" / "g.dot"), r"does not exist")


def test_train_diagnostics_prints_the_per_layer_table_each_epoch():
    proc = run_cli("train", *FAST, "--diagnostics", "--lr", "1")   # a rate that does not saturate
    assert proc.returncode == 0, proc.stderr
    tables = re.findall(r"^epoch (\d)/2 .*\n +layer +activation +\|grad\| +\|W\| +saturated\n"
                        r" +hidden\.0 +sigmoid +[0-9.e+-]+ +[0-9.e+-]+ +[0-9.]+%\n"
                        r" +output +sigmoid +[0-9.e+-]+ +[0-9.e+-]+ +[0-9.]+%$", proc.stdout, re.M)
    assert tables == ["1", "2"], proc.stdout
    assert "warning:" not in proc.stderr


def test_train_diagnostics_warns_in_plain_words_when_the_learning_rate_is_too_large():
    proc = run_cli("train", *FAST, "--diagnostics", "--quiet", "--lr", "30")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^warning: epoch 1: layer hidden\.0 is saturated: \d+% of its sigmoid outputs",
                     proc.stderr, re.M), proc.stderr
    assert "Too big a learning rate makes the weights very big" in proc.stderr
    assert "Traceback" not in proc.stderr and "TrainingWarning" not in proc.stderr
    assert proc.stdout.startswith("test accuracy:")          # quiet: no tables


def test_detect_anomaly_names_the_primitive_in_one_sentence():
    proc = run_cli("train", *FAST, "--lr", "1e300", "--detect-anomaly")
    assert_user_error(proc, r"^error: anomaly mode: the forward of 'linear' produced \d+ NaN/Inf value")
    assert "hidden.0.weight" in proc.stderr and "learning rate (1e+300) is far too large" in proc.stderr
    assert "created at" not in proc.stderr and "RuntimeWarning" not in proc.stderr


def test_a_nan_without_anomaly_mode_names_the_option_to_lower():
    proc = run_cli("train", *FAST, "--lr", "1e300")
    assert_user_error(proc, r"^error: hidden\.0\.weight became -?inf in an update of epoch 1 \(found at batch 2\): "
                      r"--lr 1e\+300 times --l2 0\.00015 is 1\.5e\+296, so large that each step's weight decay "
                      "overshoots; lower --lr$")
    assert "RuntimeWarning" not in proc.stderr
