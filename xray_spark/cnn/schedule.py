"""The learning rate over a CNN training: linear warm-up, then constant or cosine decay.

Large-batch SGD (Goyal et al. 2017, "Accurate, large minibatch SGD"): with ``ranks`` workers the
rate is ``learning_rate * ranks``, reached by a linear warm-up from the one-rank rate over
``warmup_epochs`` so the first steps do not diverge. After the warm-up the rate either stays there
(``constant``) or follows a half cosine down to ``lr_final_fraction`` of it at the last step
(``cosine``; Loshchilov and Hutter 2017), which settles the weights into a minimum instead of
leaving them bouncing at the full rate.

The rate is a function of the optimizer's step counter, which the checkpoint saves: a resumed
training continues on the same curve.
"""
from __future__ import annotations

import math


def rate_at(step: int, cnn_config, ranks: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based)."""
    c = cnn_config
    peak = c.learning_rate * ranks
    warm = c.warmup_epochs * steps_per_epoch
    if step < warm:
        return c.learning_rate + (peak - c.learning_rate) * step / warm
    if c.lr_schedule == "constant":
        return peak
    progress = min((step - warm) / max(c.epochs * steps_per_epoch - warm, 1), 1.0)
    return peak * (c.lr_final_fraction + (1.0 - c.lr_final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def callback(cnn_config, ranks: int, steps_per_epoch: int):
    """A Keras callback setting the optimizer's rate to ``rate_at`` its step counter before each step.

    A callback, not a ``LearningRateSchedule`` object: Horovod's DistributedOptimizer rebuilds the
    optimizer from its config, which would need the schedule class registered with Keras.
    """
    import tensorflow as tf

    class LearningRate(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            tf.keras.backend.set_value(self.model.optimizer.lr, rate_at(step, cnn_config, ranks, steps_per_epoch))

    return LearningRate()
