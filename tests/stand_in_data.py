"""A small stand-in for Fashion-MNIST, written when the real files are not on the machine (no test needs the
network): 10 classes of 28x28 uint8 images, each class a fixed random template plus per-image noise and a random
shift, so that a classifier can learn them. Same IDX layout and file names as the real data set."""

import os

import numpy as np

from dirtypixels_tf.data import fashion_mnist

TRAIN_IMAGES_PER_CLASS = 200
TEST_IMAGES_PER_CLASS = 100


def _split(templates, per_class, rng):
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    rng.shuffle(labels)
    images = templates[labels]
    shifts = rng.integers(-2, 3, size=(len(labels), 2))
    images = np.stack([np.roll(image, tuple(shift), axis=(0, 1)) for image, shift in zip(images, shifts)])
    images = images + rng.normal(0, 30, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


MARKER = "STAND_IN"


def using_stand_in():
    """True when the tests read the stand-in instead of the real Fashion-MNIST."""
    folder = os.environ.get("DIRTYPIXELS_FASHION_MNIST")
    return bool(folder) and os.path.isfile(os.path.join(folder, MARKER))


def write_stand_in(folder, seed=0):
    """Write the four gzip IDX files of the stand-in into `folder`; returns the folder."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(10, 7, 7))
    templates = np.kron(coarse, np.ones((4, 4)))  # [10, 28, 28], blocky so that resizing keeps the class
    os.makedirs(folder, exist_ok=True)
    for split, per_class in (("train", TRAIN_IMAGES_PER_CLASS), ("test", TEST_IMAGES_PER_CLASS)):
        images, labels = _split(templates, per_class, rng)
        image_name, label_name = fashion_mnist.FASHION_MNIST_FILES[split]
        fashion_mnist.write_idx_gz(os.path.join(folder, image_name), images)
        fashion_mnist.write_idx_gz(os.path.join(folder, label_name), labels)
    with open(os.path.join(folder, MARKER), "w") as marker:
        marker.write("a stand-in for Fashion-MNIST written by tests/stand_in_data.py\n")
    return folder
