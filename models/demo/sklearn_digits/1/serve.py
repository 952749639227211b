"""The demo's Python model container: a scikit-learn k-nearest-neighbours classifier trained at
start on scikit-learn's own 8x8 digits (a different digit dataset from MNIST), reading each MNIST
image (784 floats in [0, 1]) through the same preprocessing those digits had: the digit's
bounding box, binarised, resampled to 32x32, and counted in 4x4 blocks. About 59% accurate on
MNIST: a weak, different model beside the ONNX ones, whose weight Exp3 and Exp4 learn.
Served with Skiff's container library (skiff.container)."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from skiff.container import serve  # Skiff puts its Python library on the PYTHONPATH of what it launches

X, y = load_digits(return_X_y=True)
model = KNeighborsClassifier(n_neighbors=3).fit(X, y)
_ROWS = (np.arange(32) / 32)


def to_uci(image):
    """One 28x28 MNIST image -> the 64 block counts (0..16) of sklearn's digits."""
    b = (image.reshape(28, 28) > 0.3).astype(np.float64)
    ys, xs = np.nonzero(b)
    if len(ys):
        b = b[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = b.shape
    s = max(h, w)
    square = np.zeros((s, s))
    square[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = b
    idx = (_ROWS * s).astype(int)
    return square[idx][:, idx].reshape(8, 4, 8, 4).sum(axis=(1, 3)).ravel()


def predict(batch):
    return model.predict(np.array([to_uci(np.asarray(row)) for row in batch]))


serve(predict, input_type="floats")
