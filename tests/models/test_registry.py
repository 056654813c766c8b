"""The registry's helpers shared by every tool: model options from the command line."""

import pytest

from inception_tf import models


def test_parse_model_options_reads_literals_and_keeps_strings():
  options = models.parse_model_options(
      ["depth_multiplier=0.5", " min_depth = 8 ", "layout=paper", "aux_batch_norm=true",
       "align_feature_maps=False", "output_stride=None", "residual_scale=1e-1"])
  assert options == {"depth_multiplier": 0.5, "min_depth": 8, "layout": "paper",
                     "aux_batch_norm": True, "align_feature_maps": False, "output_stride": None,
                     "residual_scale": 0.1}
  assert models.parse_model_options(None) == {}


@pytest.mark.parametrize("pairs, message", [
    (["depth_multiplier"], "key=value"),
    (["=3"], "key=value"),
    (["min_depth=8", "min_depth=16"], "given twice"),
])
def test_parse_model_options_rejects_malformed_entries(pairs, message):
  with pytest.raises(ValueError, match=message):
    models.parse_model_options(pairs)


def test_parsed_options_build_the_model_they_name():
  options = models.parse_model_options(["depth_multiplier=0.25", "min_depth=8"])
  model = models.create_model("inception_v1", num_classes=10, image_size=64, **options)
  full = models.create_model("inception_v1", num_classes=10, image_size=64)
  assert model.count_params() < full.count_params() / 8
  with pytest.raises((ValueError, TypeError), match="no_such_option"):
    models.create_model("inception_v1", num_classes=10, image_size=64,
                        **models.parse_model_options(["no_such_option=1"]))
