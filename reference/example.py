"""Embedded inputs for the worked example and for the cross-check of ``python -m reference``."""
import numpy as np

# Two images of one person, 7 stripes each, 4 features per stripe (small enough to print).
# Image B's detection box starts one stripe lower than image A's, so stripe k of B shows
# what stripe k+1 of A shows: the misalignment that formula 2 is there to undo.
_IMAGE_A = [
    [0.55, 0.15, -0.28, -0.82],
    [-0.25, -0.42, -0.49, -1.17],
    [-0.02, -0.35, 1.36, -0.61],
    [0.94, -0.28, 0.55, -0.09],
    [-0.14, -0.87, -1.53, 0.13],
    [0.21, -1.14, -0.54, -0.03],
    [-0.22, -0.10, 0.49, -0.76],
]
_IMAGE_B = [
    [-0.12, -0.29, -0.40, -1.09],
    [0.16, -0.33, 1.39, -0.68],
    [0.80, -0.48, 0.57, 0.05],
    [-0.31, -1.01, -1.39, 0.32],
    [0.27, -1.03, -0.56, -0.02],
    [-0.31, -0.09, 0.49, -0.81],
    [0.04, -0.58, 0.15, -0.72],
]


def worked_example():
    """The stripe features of the two images of the worked example.

    Returns
    -------
    features_a, features_b : ndarray, shape (7, 4), float64

    Examples
    --------
    >>> import reference
    >>> a, b = reference.example.worked_example()
    >>> a.shape, b.shape
    ((7, 4), (7, 4))
    """
    return np.array(_IMAGE_A), np.array(_IMAGE_B)


def training_batch(seed=0, identities=8, images_per_identity=4, stripes=8, features=128,
                   noise=1.5, dtype=np.float32):
    """A seeded batch shaped like AlignedReID training: P identities x K images.

    Each identity has a mean stripe pattern; its images are that pattern plus noise
    (``noise`` times as strong), so positives are closer than negatives on average but
    not always, and some triplets are active, as early in training.

    Returns
    -------
    local_feat : ndarray, shape (P*K, stripes, features)
    global_feat : ndarray, shape (P*K, features), the stripe mean of each image
    labels : ndarray of int64, shape (P*K,)

    Examples
    --------
    >>> import reference
    >>> local_feat, global_feat, labels = reference.example.training_batch()
    >>> local_feat.shape, global_feat.shape, labels.shape
    ((32, 8, 128), (32, 128), (32,))
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 1, stripes, features))
    jitter = noise * rng.normal(size=(identities, images_per_identity, stripes, features))
    local_feat = (centres + jitter).reshape(-1, stripes, features).astype(dtype)
    labels = np.repeat(np.arange(identities, dtype=np.int64), images_per_identity)
    return local_feat, local_feat.mean(axis=1), labels
