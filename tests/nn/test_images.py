"""Image files and raw pixels to model inputs: MNIST-style preparation of drawings, the preprocessing
record a model carries (nn/images.py), and predict / evaluate on raw pixels."""
import gzip
from pathlib import Path

import numpy as np
import pytest

import nn
from nn.datasets import load_digits
from nn.images import ImageError, Preprocessing, describe_top, looks_scaled, prepare_image, read_images

MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
DIGITS = Preprocessing((8, 8), 16, (-1, 1), tuple("0123456789"), "digits")


def drawing(kind, digit, light=True, pen=12, size=200, margin=40, font_size=120):
    """A size x size drawing of `digit`: a font glyph (kind "font") or strokes ("pen": lines and
    ellipses, like handwriting), ink of width `pen`, on light or dark paper, with margins."""
    from PIL import Image, ImageDraw, ImageFont
    paper, ink = (255, 0) if light else (0, 255)
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    if kind == "font":
        try:
            font = ImageFont.load_default(size=font_size)
        except TypeError:             # Pillow < 10.1: one bitmap size
            font = ImageFont.load_default()
        draw.text((size / 2, size / 2), str(digit), fill=ink, font=font, anchor="mm",
                  stroke_width=pen // 4, stroke_fill=ink)
        return np.asarray(image, dtype=np.float64)
    a, b = margin, size - margin                          # the digit's box
    mid_x, mid_y = (a + b) / 2, (a + b) / 2
    if digit == 1:
        draw.line([(mid_x + 10, a), (mid_x - 5, b)], fill=ink, width=pen)
    elif digit == 6:
        draw.ellipse([a + 15, mid_y - 5, b - 15, b], outline=ink, width=pen)
        draw.line([(b - 25, a), (a + 18, mid_y + 30)], fill=ink, width=pen)
    elif digit == 9:
        draw.ellipse([a + 15, a, b - 15, mid_y + 5], outline=ink, width=pen)
        draw.line([(b - 16, mid_y - 10), (b - 22, b)], fill=ink, width=pen)
    elif digit == 7:
        draw.line([(a + 10, a), (b - 10, a)], fill=ink, width=pen)
        draw.line([(b - 10, a), (mid_x - 10, b)], fill=ink, width=pen)
    elif digit == 0:
        draw.ellipse([a + 20, a, b - 20, b], outline=ink, width=pen)
    elif digit == 4:
        draw.line([(mid_x + 15, a), (a + 10, mid_y + 15)], fill=ink, width=pen)
        draw.line([(a + 10, mid_y + 15), (b - 5, mid_y + 15)], fill=ink, width=pen)
        draw.line([(mid_x + 15, a), (mid_x + 15, b)], fill=ink, width=pen)
    else:
        raise ValueError(f"no strokes for {digit}")
    return np.asarray(image, dtype=np.float64)


def idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


@pytest.fixture(scope="session")
def mnist_model(tmp_path_factory):
    """A 784-100-10 ReLU MLP, two epochs of Adam on 30,000 MNIST images in batches of 250 (about
    91% training accuracy; 9-10 of the drawings right over seeds 0-2). The lecture's sigmoid
    network needs 1,200 steps of batch 50 for that, which cost 30 s here; eager, because a first
    compiled step with an empty kernel cache compiles for longer than these 240 steps take."""
    if not (MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the MNIST files are not in {MNIST}")
    x, y = idx(MNIST / "train-images-idx3-ubyte.gz")[:30000], idx(MNIST / "train-labels-idx1-ubyte.gz")[:30000]
    prep = Preprocessing((28, 28), 255, (-1, 1), tuple("0123456789"), "mnist")
    model = nn.MLP([784, 100, 10], activation="relu", seed=0, dtype=np.float32)
    nn.fit(model, "ce", nn.Adam(model, lr=0.003), (prep.apply(x), y.astype(np.int64)), epochs=2, batch_size=250,
           verbose=False, compile=False)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    nn.save(model, path, prep)
    return path


@pytest.fixture(scope="module")
def digits_model():
    ds = load_digits()
    model = nn.MLP([64, 50, 10], activation="sigmoid", output_activation="sigmoid", seed=0, dtype=np.float32)
    nn.fit(model, "bce", nn.SGD(model, lr=2.0), (DIGITS.apply(ds.x_train), ds.y_train), epochs=30, verbose=False)
    return model


# ---------------------------------------------------------------- drawings, prepared as MNIST was
SYNTHETIC = [  # (kind, digit, light paper, pen width, font size)
    ("font", 2, True, 4, 100), ("font", 3, False, 8, 140), ("font", 5, True, 0, 80), ("font", 8, False, 4, 120),
    ("font", 0, True, 8, 60), ("pen", 1, False, 14, 0), ("pen", 6, True, 8, 0), ("pen", 9, False, 18, 0),
    ("pen", 7, True, 5, 0), ("pen", 4, False, 12, 0)]


def test_drawn_digits_with_margins_are_read_right_by_an_mnist_model(mnist_model):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    model = nn.load(mnist_model)
    images = np.stack([prepare_image(drawing(kind, d, light, pen, font_size=size), 28, 255)
                       for kind, d, light, pen, size in SYNTHETIC])
    assert images.shape == (10, 28, 28) and images.max() == 255
    predicted = nn.predict(model, images)
    truth = np.array([case[1] for case in SYNTHETIC])
    assert np.sum(predicted == truth) >= 9, (predicted, truth)
    print("synthetic:", predicted, truth)


def test_a_200x200_drawing_of_a_3_is_a_3_on_the_command_line(mnist_model, tmp_path, capsys):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    from PIL import Image
    from nn.cli import main
    Image.fromarray(drawing("font", 3, True, 8, font_size=120).astype(np.uint8)).save(tmp_path / "three.png")
    assert main(["predict", "--model", str(mnist_model), str(tmp_path / "three.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'three.png'}: 3 (probability ") and "; then " in out


def test_prepared_mnist_digits_have_a_20_pixel_box_centred_by_mass():
    pytest.importorskip("PIL", reason="Pillow is not installed")
    image = prepare_image(drawing("pen", 1, light=True, pen=10), 28, 255)
    rows, cols = np.nonzero(image > 0)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21
    mass = image / image.sum()
    centre = ((mass.sum(1) * np.arange(28)).sum(), (mass.sum(0) * np.arange(28)).sum())
    assert abs(centre[0] - 13.5) <= 1 and abs(centre[1] - 13.5) <= 1


def test_dark_and_light_paper_give_the_same_prepared_digit():
    pytest.importorskip("PIL", reason="Pillow is not installed")
    light = prepare_image(drawing("pen", 7, light=True), 28, 255)
    dark = prepare_image(drawing("pen", 7, light=False), 28, 255)
    np.testing.assert_allclose(light, dark, atol=1e-6)


def test_an_8x8_preparation_counts_a_32x32_bitmap_of_the_digit_box(digits_model):
    pytest.importorskip("PIL", reason="Pillow is not installed")
    image = prepare_image(drawing("pen", 0, light=True, pen=16), 8, 16)
    assert image.shape == (8, 8) and 8 < image.max() <= 16 and np.all(image == np.round(image))
    assert image[:, 0].any() or image[:, -1].any() or image[0].any()     # the box fills the field
    ds = load_digits()
    # the bundled digits, blown up 4x as 0/255 bitmaps, come back as themselves (binarized)
    bitmaps = [np.kron(d >= 8, np.ones((4, 4))) * 255 for d in ds.x_test[:50]]
    back = np.stack([prepare_image(np.pad(b, 8), 8, 16) for b in bitmaps])
    assert np.mean(nn.predict(digits_model, DIGITS.apply(back)) == ds.y_test[:50]) >= 0.8


def test_an_image_without_ink_is_a_black_field():
    assert not prepare_image(np.full((40, 30), 200.0), 28, 255).any()


# ---------------------------------------------------------------- the preprocessing record
def test_predict_takes_raw_digits_as_load_digits_gives_them(digits_model, tmp_path):
    ds = load_digits()
    nn.save(digits_model, tmp_path / "digits.npz", DIGITS)
    model = nn.load(tmp_path / "digits.npz")
    assert model.preprocessing == DIGITS
    raw = nn.predict(model, ds.x_test)                        # (n, 8, 8) in 0..16
    scaled = nn.predict(digits_model, DIGITS.apply(ds.x_test))
    assert np.array_equal(raw, scaled) and np.mean(raw == ds.y_test) > 0.9
    assert nn.evaluate(model, ds.x_test, ds.y_test).accuracy == np.mean(raw == ds.y_test)
    assert np.array_equal(nn.predict(model, ds.x_test.reshape(-1, 64)), raw)


def test_inputs_already_scaled_are_refused_or_warned_about(digits_model):
    model = nn.MLP([64, 10], seed=0)
    model.preprocessing = DIGITS
    with pytest.raises(ValueError, match=r"predict: the inputs hold values in \[-1, 1\], outside the raw pixel "
                                         r"range 0\.\.16.*model\.preprocessing = None"):
        nn.predict(model, np.linspace(-1, 1, 64).reshape(1, 64))
    with pytest.warns(UserWarning, match="look already scaled"):
        nn.predict(model, np.full((2, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"inputs of shape \(2, 28, 28\) do not fit the model"):
        nn.predict(model, np.zeros((2, 28, 28)))
    assert looks_scaled(np.full(4, 200.0), 255) is None


def test_preprocessing_round_trips_through_json_and_checks_its_fields():
    assert Preprocessing.from_json(DIGITS.to_json()) == DIGITS
    with pytest.raises(ValueError, match="pixel_max must be a positive number"):
        Preprocessing((8, 8), 0)
    with pytest.raises(ValueError, match="input_shape"):
        Preprocessing.from_json({"input_shape": "8x8", "pixel_max": 16})
    assert Preprocessing.guess(784).pixel_max == 255 and Preprocessing.guess(50) is None


def test_describe_top_names_three_classes_best_first():
    p = np.array([0.1, 0.6, 0.05, 0.25])
    assert describe_top(p, ("a", "b", "c", "d")) == "b (probability 0.600); then d (0.250), a (0.100)"


def test_read_images_reads_npy_stacks_and_refuses_a_wrong_range(tmp_path):
    np.save(tmp_path / "x.npy", load_digits().x_test[:3])
    assert read_images(tmp_path / "x.npy", (8, 8), 16).shape == (3, 64)
    np.save(tmp_path / "big.npy", np.full(64, 99))
    with pytest.raises(ImageError, match=r"outside 0\.\.16"):
        read_images(tmp_path / "big.npy", (8, 8), 16)
