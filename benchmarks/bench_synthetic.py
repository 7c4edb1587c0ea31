"""How fast does a random-init ESM-2 learn the planted-motif task? (issue 3: generator defaults)

Prints test accuracy per epoch and the wall time for a few (data, model, optimiser) settings, so
that config/synthetic.yaml's defaults come from measurements. One process, CPU threads = 2.

    python benchmarks/bench_synthetic.py [--arch 6,320,20] [--epochs 6] [--n-per-class 300]
"""

from __future__ import annotations

import argparse
import time

import torch

from kneurons.data.clean import clean_dataset
from kneurons.data.options import DatasetOptions
from kneurons.data.split import split_dataset
from kneurons.data.synthetic import SyntheticOptions, generate
from kneurons.model.batching import tokenize
from kneurons.model.classifier import Architecture, EsmClassifier, alphabet, build_random
from kneurons.model.predict import classification_metrics, predict_logits
from kneurons.model.train import TrainOptions, finetune


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="6,320,20", help="num_layers,embed_dim,heads")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-per-class", type=int, default=300)
    parser.add_argument("--min-length", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=120)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table, _ = generate(
        SyntheticOptions(
            n_per_class=args.n_per_class,
            min_length=args.min_length,
            max_length=args.max_length,
            copies=args.copies,
        )
    )
    table = table.rename(
        columns={"Entry": "accession", "EC number": "ec_numbers", "Sequence": "sequence"}
    )
    options = DatasetOptions(fractions=(0.8, 0.1, 0.1))
    splits, card = split_dataset(*clean_dataset(table, options), options)
    layers, width, heads = (int(v) for v in args.arch.split(","))
    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(layers, width, heads)), len(card["classes"]))
    options = TrainOptions(
        epochs=args.epochs,
        lr=args.lr,
        head_lr=args.lr,
        max_tokens=4096,
        max_batch_size=32,
        warmup_fraction=0.1,
    )
    start = time.perf_counter()
    model, history = finetune(
        model, alphabet(), splits["train"], splits["val"], options, torch.device("cpu")
    )
    seconds = time.perf_counter() - start
    test = splits["test"]
    logits = predict_logits(model, tokenize(alphabet(), test["sequence"].tolist()), "cpu")
    metrics = classification_metrics(test["label"], logits.argmax(1).numpy(), card["classes"])
    print(
        history[
            ["epoch", "train_loss", "val_accuracy", "seconds", "residues_per_second"]
        ].to_string(index=False)
    )
    print(
        f"arch {args.arch}, {sum(card['totals'].values())} sequences "
        f"{args.min_length}-{args.max_length} aa, lr {args.lr}: test accuracy "
        f"{metrics['accuracy']:.3f} after {seconds:.0f} s of training"
    )


if __name__ == "__main__":
    main()
