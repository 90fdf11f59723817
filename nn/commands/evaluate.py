"""`python -m nn evaluate`: the test accuracy and confusion matrix of saved models (an averaged
ensemble when several), on the data set the model file names unless --dataset says otherwise."""
from __future__ import annotations

import argparse

import numpy as np

from ..datasets import load_dataset
from ..datasets.defaults import FEATURE_RANGE
from ..images import Preprocessing
from ..train import Evaluation, predict_proba
from .common import UserError, check_data_dir, load_models, model_shape, parse_hidden


def run(args: argparse.Namespace) -> int:
    """Evaluate `args.model` (one file or an ensemble) on a data set's test set; exit code 0."""
    models = load_models(args.model, parse_hidden(args.hidden))
    check_data_dir(args.data_dir)
    recorded = models[0].preprocessing
    name = args.dataset or (recorded and recorded.dataset) or "digits"
    ds = load_dataset(name, root=args.data_dir, download=not args.no_download, verbose=not args.quiet)
    (width, classes), pixels = model_shape(models[0]), int(np.prod(ds.image_shape))
    if pixels != width or classes != ds.num_classes:
        raise UserError(f"{args.model[0]} takes {width} inputs and gives {classes} classes, "
                        f"but {ds.name} has {pixels} pixels per image and {ds.num_classes} classes")
    for m in models:      # a file without a record: the scaling train has always used
        m.preprocessing = m.preprocessing or Preprocessing.for_dataset(ds, FEATURE_RANGE)
    probs = np.mean([predict_proba(m, ds.x_test * (m.preprocessing.pixel_max / ds.max_value)) for m in models],
                    axis=0)
    result = Evaluation.of_predictions(ds.y_test, np.argmax(probs, axis=1), ds.num_classes)
    what = "ensemble of %d" % len(models) if len(models) > 1 else args.model[0]
    print(f"{what} on {ds.name} test set: accuracy {100 * result.accuracy:.2f}% "
          f"({result.correct}/{result.samples})")
    if not args.quiet:
        print("confusion matrix (rows: true class)\n" + result.confusion_table(ds.classes))
    return 0
