"""Evaluation: crop protocols (1/10/12/144), ensembles, EMA weights, every example counted once.

    from inception_tf.eval import evaluate, ModelSpec
    report = evaluate(ModelSpec("inception_v3", checkpoint="/tmp/run"), "/data/imagenet", crops=144)
"""

from inception_tf.eval.crops import crop_geometry
from inception_tf.eval.crops import make_crops
from inception_tf.eval.evaluate import Evaluator
from inception_tf.eval.evaluate import EvaluationError
from inception_tf.eval.evaluate import ModelSpec
from inception_tf.eval.evaluate import benchmark_multicrop
from inception_tf.eval.evaluate import evaluate
from inception_tf.eval.evaluate import watch
