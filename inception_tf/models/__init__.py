"""The model zoo: Keras functional models with the layout and names of the checkpoints they load.

The registry is a leaf; the family modules import it and register their builders, and this package
imports every family (below) so that `list_models()` sees them all.
"""

from inception_tf.models.registry import create_model
from inception_tf.models.registry import feature_extractor
from inception_tf.models.registry import list_models
from inception_tf.models.registry import model_info
from inception_tf.models.registry import parse_model_options
from inception_tf.models.registry import ModelInfo

# Families, imported for their @register_model side effect (one line each).
from inception_tf.models import inception_v1  # noqa: F401,E402
from inception_tf.models import inception_v2  # noqa: F401,E402
from inception_tf.models import inception_v3  # noqa: F401,E402
from inception_tf.models import inception_v4  # noqa: F401,E402
from inception_tf.models import inception_resnet  # noqa: F401,E402
from inception_tf.models import resnet_v1  # noqa: F401,E402
from inception_tf.models import resnet  # noqa: F401,E402
from inception_tf.models import resnet_cifar  # noqa: F401,E402
from inception_tf.models import fid_inception_v3  # noqa: F401,E402
from inception_tf.models import resnet_v2  # noqa: F401,E402

__all__ = ["create_model", "feature_extractor", "list_models", "model_info", "ModelInfo",
           "parse_model_options"]
