"""The Inception model zoo: Keras functional models with TF-slim's layout and names."""

from inception_tf.models.registry import create_model
from inception_tf.models.registry import feature_extractor
from inception_tf.models.registry import list_models
from inception_tf.models.registry import model_info
from inception_tf.models.registry import parse_model_options
from inception_tf.models.registry import ModelInfo

__all__ = ["create_model", "feature_extractor", "list_models", "model_info", "ModelInfo",
           "parse_model_options"]
