"""What MNIST is: its four files by role, the image shape and the classes."""

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_SHAPE = (1, 28, 28)  # one channel, 28x28 pixels
NUM_CLASSES = 10
