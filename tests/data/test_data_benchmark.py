"""The input-pipeline benchmark (inception_tf.benchmarks.input): windows, producers, output keys."""

from inception_tf.benchmarks import input as benchmark


def test_interleaved_rates_opens_each_producer_per_window_and_drops_it():
  opened, alive = [], {"count": 0}

  def producer(name, images_per_call):
    def open_producer():
      opened.append(name)
      alive["count"] += 1
      assert alive["count"] == 1, "a previous window's producer is still alive"

      class Produce:
        def __call__(self):
          return images_per_call

        def __del__(self):
          alive["count"] -= 1

      return Produce()
    return open_producer

  rates = benchmark._interleaved_rates(  # pylint: disable=protected-access
      {"a": producer("a", 2), "b": producer("b", 3)}, seconds=0.02, warmup_calls=1, rounds=3)
  assert opened == ["a", "b"] * 3
  assert alive["count"] == 0
  assert rates["a"] > 0 and rates["b"] > 0


def test_benchmark_input_on_digits_reports_every_pipeline_and_ratio(digits_dir):
  rates = benchmark.benchmark_input(digits_dir, image_size=75, batch_size=8, seconds=0.4,
                                    warmup_batches=1, rounds=2, fast_mode=True)
  expected = {"decode_only", "train", "train_device_color", "eval"}
  assert expected == {key for key in rates if "/" not in key}  # fast mode only: no *_4_methods
  for name in expected - {"decode_only"}:
    assert rates[name] > 0
    assert abs(rates[f"{name}/decode_only"] - rates[name] / rates["decode_only"]) < 1e-9
