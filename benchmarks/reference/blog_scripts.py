"""The peer TransferLab is measured against: the blog's scripts 2 and 3 as published for Keras 2.

F. Chollet, "Building powerful image classification models using very little data" (2016):
classifier_from_little_data_script_2.py (bottleneck features) and _script_3.py (fine-tuning),
run with tf_keras (the Keras 2 API) and ImageDataGenerator / flow_from_directory.

Changed only where the published scripts are broken or two-class only:
- every image is counted: steps = ceil(n / batch) instead of n // batch (the published script drops
  the last partial batch and then builds labels that no longer match the features);
- labels come from the generator's `classes` instead of "half zeros, half ones";
- N classes: softmax + sparse categorical cross-entropy when there are more than two.
Everything else (rescale=1/255, Flatten -> Dense(256) -> Dropout(0.5) head, rmsprop, then SGD 1e-4
momentum 0.9 with shear/zoom/flip for fine-tuning, layers[:15] frozen) is as published.

Run in its own process (it must not share a process with Keras 3):
    python benchmarks/reference/blog_scripts.py bottleneck --data DIR --out DIR [--epochs 10]
    python benchmarks/reference/blog_scripts.py finetune --data DIR --out DIR [--epochs 1]
Each prints one JSON line with its timings and validation accuracy.
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from tf_keras import applications, optimizers  # noqa: E402
from tf_keras.layers import Dense, Dropout, Flatten  # noqa: E402
from tf_keras.models import Model, Sequential  # noqa: E402
from tf_keras.preprocessing.image import ImageDataGenerator  # noqa: E402


def _weights(name: str):
    return None if name == "none" else "imagenet"


def _top_model(input_shape, n_classes: int) -> Sequential:
    model = Sequential()
    model.add(Flatten(input_shape=input_shape))
    model.add(Dense(256, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(1, activation="sigmoid") if n_classes == 2 else Dense(n_classes, activation="softmax"))
    return model


def _loss(n_classes: int) -> str:
    return "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"


def bottleneck(args) -> dict:
    size = (args.size, args.size)
    datagen = ImageDataGenerator(rescale=1.0 / 255)
    model = applications.VGG16(include_top=False, weights=_weights(args.weights))
    started = time.perf_counter()
    features, labels = {}, {}
    for split in ("train", "validation"):
        generator = datagen.flow_from_directory(
            os.path.join(args.data, split), target_size=size, batch_size=args.batch_size, class_mode=None, shuffle=False
        )
        features[split] = model.predict(generator, steps=math.ceil(generator.samples / args.batch_size), verbose=0)
        labels[split] = generator.classes
        n_classes = generator.num_classes
    extract_s = time.perf_counter() - started
    np.save(os.path.join(args.out, "bottleneck_features_train.npy"), features["train"])
    np.save(os.path.join(args.out, "bottleneck_features_validation.npy"), features["validation"])

    started = time.perf_counter()
    top = _top_model(features["train"].shape[1:], n_classes)
    top.compile(optimizer="rmsprop", loss=_loss(n_classes), metrics=["accuracy"])
    history = top.fit(
        features["train"],
        labels["train"],
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(features["validation"], labels["validation"]),
        verbose=0,
    )
    train_s = time.perf_counter() - started
    top.save_weights(os.path.join(args.out, "bottleneck_fc_model.h5"))
    return {
        "script": "bottleneck",
        "extract_s": extract_s,
        "train_s": train_s,
        "total_s": extract_s + train_s,
        "n_train": int(len(labels["train"])),
        "n_validation": int(len(labels["validation"])),
        "val_accuracy": float(history.history["val_accuracy"][-1]),
    }


def finetune(args) -> dict:
    size = (args.size, args.size)
    base = applications.VGG16(weights=_weights(args.weights), include_top=False, input_shape=(*size, 3))
    n_classes = len([d for d in os.listdir(os.path.join(args.data, "train")) if not d.startswith(".")])
    top = _top_model(base.output_shape[1:], n_classes)
    top.load_weights(os.path.join(args.out, "bottleneck_fc_model.h5"))
    model = Model(inputs=base.input, outputs=top(base.output))
    for layer in model.layers[:15]:
        layer.trainable = False
    model.compile(
        loss=_loss(n_classes), optimizer=optimizers.SGD(learning_rate=1e-4, momentum=0.9), metrics=["accuracy"]
    )
    class_mode = "binary" if n_classes == 2 else "sparse"
    train_gen = ImageDataGenerator(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
    test_gen = ImageDataGenerator(rescale=1.0 / 255)
    train = train_gen.flow_from_directory(
        os.path.join(args.data, "train"), target_size=size, batch_size=args.batch_size, class_mode=class_mode
    )
    validation = test_gen.flow_from_directory(
        os.path.join(args.data, "validation"), target_size=size, batch_size=args.batch_size, class_mode=class_mode
    )
    epoch_s = []

    started = time.perf_counter()
    history = model.fit(
        train,
        steps_per_epoch=math.ceil(train.samples / args.batch_size),
        epochs=args.epochs,
        validation_data=validation,
        validation_steps=math.ceil(validation.samples / args.batch_size),
        verbose=0,
    )
    epoch_s.append((time.perf_counter() - started) / args.epochs)
    return {
        "script": "finetune",
        "epoch_s": epoch_s[0],
        "epochs": args.epochs,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", choices=["bottleneck", "finetune"])
    parser.add_argument("--data", required=True, help="folder with train/<class>/ and validation/<class>/")
    parser.add_argument("--out", required=True, help="folder for the features and the top model's weights")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--weights", choices=["imagenet", "none"], default="none")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 50 if args.script == "bottleneck" else 1
    os.makedirs(args.out, exist_ok=True)
    result = bottleneck(args) if args.script == "bottleneck" else finetune(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
