"""The course's experiment as its Keras code is written; only the imports differ (keras -> cnnlab),
and ``seed=0`` where the models are made: the command line's seed, so that the numbers are
``cnnlab train``'s (without a seed each run draws its own and runs differ, as in Keras).

Run it with ``python examples/course_keras.py`` (digits: offline, a few seconds; set DATASET
to "cifar10" for the real experiment). tests/test_course_code.py runs it and checks its numbers.
"""
import numpy as np

import cnnlab as keras
from cnnlab.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from cnnlab.utils import to_categorical

DATASET = "digits"  # "cifar10" for the real experiment

(x_train, y_train), (x_test, y_test) = keras.load_data(DATASET)
x_train, x_test = x_train.astype("float32") / 255, x_test.astype("float32") / 255
y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)


def mlp():
    inputs = Input(shape=x_train.shape[1:])
    x = Flatten()(inputs)
    for units in (128, 256, 512):
        x = Dense(units, activation="relu")(x)
        x = Dropout(0.2)(x)
    return keras.Model(inputs=inputs, outputs=Dense(10, activation="softmax")(x), seed=0)


def cnn():
    inputs = Input(shape=x_train.shape[1:])
    x = inputs
    for filters in (32, 64, 128):
        x = Conv2D(filters, (3, 3), padding="same", activation="relu")(x)
        x = Conv2D(filters, (3, 3), padding="same", activation="relu")(x)
        x = MaxPooling2D((2, 2))(x)
    x = Dropout(0.2)(Flatten()(x))
    x = Dropout(0.5)(Dense(512, activation="relu")(x))
    return keras.Model(inputs=inputs, outputs=Dense(10, activation="softmax")(x), seed=0)


def run() -> dict:
    """Train both networks as the course does; per network: val accuracy, test accuracy, test loss, params."""
    results = {}
    for name, build in (("mlp", mlp), ("cnn", cnn)):
        model = build()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x_train, y_train, batch_size=32, epochs=5, validation_split=0.2, verbose=0)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        predicted = model.predict(x_test, verbose=0).argmax(axis=1)
        model.summary()
        results[name] = {"val_accuracy": history.history["val_accuracy"][-1], "test_accuracy": accuracy,
                         "test_loss": loss, "params": model.count_params(),
                         "predict_accuracy": float(np.mean(predicted == y_test.argmax(axis=1)))}
    return results


if __name__ == "__main__":
    for network, numbers in run().items():
        print(network, {key: round(value, 4) for key, value in numbers.items()})
