"""The small CNN classifier of glyphs: the judges' (hw_gan.evaluation.judge) and the few-shot
trainer's content classifier (--content_class_weight) are this network.

Always float32, whatever the global mixed-precision policy.
"""

from __future__ import annotations

FEATURE_DIM = 128
DROPOUT = 0.3  # on the 128-d features while training


def _channels(image_size: int) -> tuple[int, ...]:
    if image_size not in (32, 64):
        raise ValueError(f"the classifier takes 32x32 or 64x64 images, not {image_size}")
    return (32, 64, 128) if image_size == 32 else (32, 64, 128, 128)


def build_classifier(image_size: int, num_classes: int, seed: int = 0,
                     name: str = "judge"):
    """Conv blocks (3x3 conv, then a stride-2 3x3 conv; BN + ReLU) down to 4x4, global average
    pooling, a 128-d ReLU feature layer named "features", dropout, softmax head ("probs")."""
    import keras
    from keras import layers

    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"a classifier needs at least one class, got {num_classes}")
    k = [0]

    def init():
        k[0] += 1
        return keras.initializers.HeNormal(seed=seed * 1000 + k[0])

    f32 = "float32"
    inp = keras.Input((image_size, image_size, 1), name="image", dtype=f32)
    x = inp
    for i, ch in enumerate(_channels(image_size)):
        for j, stride in enumerate((1, 2)):
            x = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False,
                              kernel_initializer=init(), dtype=f32, name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(momentum=0.9, dtype=f32, name=f"bn{i}_{j}")(x)
            x = layers.ReLU(dtype=f32, name=f"relu{i}_{j}")(x)
    x = layers.GlobalAveragePooling2D(dtype=f32, name="pool")(x)
    feats = layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=init(), dtype=f32,
                         name="features")(x)
    x = layers.Dropout(DROPOUT, seed=seed + 17, dtype=f32, name="dropout")(feats)
    probs = layers.Dense(num_classes, activation="softmax", dtype=f32,
                         kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 23),
                         name="probs")(x)
    return keras.Model(inp, probs, name=name)
