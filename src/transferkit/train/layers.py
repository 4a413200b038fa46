"""Keras layers transferkit adds to training models: random 90° turns (registered, so saved models reload)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="transferkit")
class RandomRot90(keras.layers.Layer):
    """In training, turns each (square) image by 0, 90, 180 or 270 degrees, uniformly at random.

    For images without an up or a handedness (solar cells, microscopy, satellite tiles); with a random flip it
    gives all eight orientations of a square. Inference passes images through unchanged.

    Example:
    >>> layer = RandomRot90(seed=0)  # doctest: +SKIP
    >>> layer(images, training=True)  # doctest: +SKIP
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        batch = ops.shape(images)[0]
        quarter = ops.flip(ops.transpose(images, (0, 2, 1, 3)), axis=1)  # np.rot90 of each image
        images = ops.where(keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < 0.5, quarter, images)
        half = ops.flip(ops.flip(images, axis=1), axis=2)
        return ops.where(keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < 0.5, half, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
