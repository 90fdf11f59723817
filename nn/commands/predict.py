"""`python -m nn predict`: classify .npy arrays of raw pixels or image files (prepared as the data
set's images were) with saved models; the top 3 classes per image, and a warning when unsure."""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from ..datasets.defaults import FEATURE_RANGE
from ..images import Preprocessing, describe_top, looks_scaled, model_input, read_images
from ..train import predict_proba
from .common import UserError, load_models, model_shape

# below this best probability, predict warns that the model is unsure
UNSURE_BELOW = 0.5


def run(args: argparse.Namespace) -> int:
    """Print the likeliest classes of each image in `args.files`; exit code 0."""
    models = load_models(args.model, None)
    width = model_shape(models[0])[0]
    for m in models:      # a file without a record: the scaling train has always used
        m.preprocessing = m.preprocessing or Preprocessing.guess(width, args.max_value, FEATURE_RANGE)
    prep = models[0].preprocessing
    if prep is None:
        raise UserError(f"the model takes {width} inputs, which is no known image size; give --max-value")
    if prep.width != width:
        raise UserError(f"{args.model[0]} records images of shape {prep.input_shape} but takes "
                        f"{model_input(width, 0)}; the file is inconsistent")
    data_max = args.max_value or prep.pixel_max
    for name in args.files:
        images = read_images(name, prep.input_shape, data_max)
        scaled = looks_scaled(images, data_max) if name.lower().endswith(".npy") else None
        if scaled:
            print(f"warning: {name}: {scaled}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # said once above
            probs = np.mean([predict_proba(m, images * (m.preprocessing.pixel_max / data_max)) for m in models],
                            axis=0)
        for i, p in enumerate(probs):
            where = name if len(probs) == 1 else f"{name}[{i}]"
            print(f"{where}: {describe_top(p, prep.class_names)}")
            if p.max() < UNSURE_BELOW:
                print(f"warning: {where}: the model is unsure (best probability {p.max():.3f}); is it one "
                      "object, centred, on a plain background?", file=sys.stderr)
    return 0
