"""Data: slim-layout TFRecords, Inception preprocessing and the tf.data input pipeline.

    from inception_tf import data
    source = data.default_dataset.digits_data_dir()          # built-in digits, built once
    info = data.dataset_info(source)                          # num_classes=11, labels_offset=1
    train = data.make_dataset(source, split="train", is_training=True, batch_size=32,
                              image_size=299)
"""

from inception_tf.data import builder
from inception_tf.data import default_dataset
from inception_tf.data import imagenet
from inception_tf.data import preprocessing
from inception_tf.data import tfrecord
from inception_tf.data.pipeline import DatasetInfo
from inception_tf.data.pipeline import dataset_info
from inception_tf.data.pipeline import decode_error_count
from inception_tf.data.pipeline import list_files
from inception_tf.data.pipeline import make_dataset
from inception_tf.data.preprocessing import decode_image_rgb
from inception_tf.data.preprocessing import preprocess_for_eval
from inception_tf.data.preprocessing import preprocess_for_train

__all__ = [
    "DatasetInfo", "builder", "dataset_info", "decode_error_count", "decode_image_rgb",
    "default_dataset", "imagenet", "list_files", "make_dataset", "preprocess_for_eval",
    "preprocess_for_train", "preprocessing", "tfrecord",
]
