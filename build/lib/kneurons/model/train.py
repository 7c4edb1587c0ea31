"""Fine-tuning an ESM-2 classifier: AdamW, length-sorted batches, best validation weights kept."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from kneurons.io import atomic_write
from kneurons.model.batching import iter_batches, tokenize
from kneurons.model.classifier import EsmClassifier
from kneurons.model.predict import classification_metrics, predict_logits
from kneurons.progress import Progress

logger = logging.getLogger(__name__)  # progress lines; `finetune`'s `log` takes the epoch lines


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 5
    lr: float = 5e-5  # encoder learning rate
    head_lr: float = 1e-3  # the head starts from scratch and may learn faster
    weight_decay: float = 0.01
    max_tokens: int = 8192  # padded tokens per batch
    max_batch_size: int = 32
    grad_clip: float = 1.0
    warmup_fraction: float = 0.05  # linear warm-up, then cosine decay to zero
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> TrainOptions:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in cfg.items() if k in known})


def _lr_lambda(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(round(total_steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def run_fingerprint(
    model: EsmClassifier,
    train: pd.DataFrame,
    val: pd.DataFrame,
    options,
    code: Mapping[str, str] | None = None,
    device: str = "cpu",
) -> str:
    """What a resumable state must match: options, data, the starting weights, the library code
    that trains (`code`: file -> SHA-256, `kneurons.store.files_fingerprint`), the torch
    version and the device kind. Epochs trained by other code or another torch are not
    continued by this one."""
    settings = {
        "options": asdict(options),
        "code": dict(code or {}),
        "torch": torch.__version__,
        "device": device,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for frame in (train, val):
        digest.update(pd.util.hash_pandas_object(frame[["sequence", "label"]]).values.tobytes())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _save_state(path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_state(path, fingerprint: str, log) -> dict | None:
    """The saved state of an interrupted run of the same training, or None."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a foreign or damaged file: start afresh rather than fail
        log(f"ignoring unreadable resume state {path} ({type(err).__name__})")
        return None
    if state.get("fingerprint") != fingerprint:
        log(
            f"ignoring resume state {path}: it belongs to other options, data, weights, code, "
            "torch version or device"
        )
        return None
    return state


def finetune(
    model: EsmClassifier,
    alphabet,
    train: pd.DataFrame,
    val: pd.DataFrame,
    options: TrainOptions,
    device: torch.device,
    log: Callable[[str], None] = print,
    resume_path: str | Path | None = None,
    code: Mapping[str, str] | None = None,
) -> tuple[EsmClassifier, pd.DataFrame]:
    """Train on `train` (columns sequence, label), validate each epoch on `val`.

    Returns the model holding the weights of the epoch with the best validation macro-F1
    (ties: the earlier epoch) and one row per epoch of training history.

    With `resume_path`, the full training state (weights, optimiser, scheduler, RNG, history)
    is saved there after every epoch; a later call with the same options, data, starting
    weights, code (`code`, the job's library files by SHA-256), torch version and device kind
    continues from it and ends exactly where an uninterrupted run would. The file is
    removed when training completes. Each epoch's progress (sequences done, rate, ETA) goes to
    this module's logger every 30 s (`kneurons.progress`).
    """
    fingerprint = (
        run_fingerprint(model, train, val, options, code, torch.device(device).type)
        if resume_path
        else None
    )
    torch.manual_seed(options.seed)
    model.to(device)
    train_tokens = tokenize(alphabet, train["sequence"].tolist())
    train_labels = torch.tensor(train["label"].to_numpy(), dtype=torch.long)
    val_tokens = tokenize(alphabet, val["sequence"].tolist())
    val_labels = val["label"].to_numpy().copy()
    classes = [str(i) for i in range(model.num_classes)]

    head_params = list(model.head.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in model.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": options.lr},
            {"params": head_params, "lr": options.head_lr},
        ],
        weight_decay=options.weight_decay,
    )
    padding_idx = model.encoder.padding_idx
    n_batches = sum(
        1
        for _ in iter_batches(train_tokens, padding_idx, options.max_tokens, options.max_batch_size)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(n_batches * options.epochs, options.warmup_fraction)
    )

    best_state, best_key, best_epoch, history, first_epoch = None, None, None, [], 1
    saved = _load_state(resume_path, fingerprint, log)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        best_state, best_epoch, history = saved["best_state"], saved["best_epoch"], saved["history"]
        best_key = tuple(saved["best_key"])
        first_epoch = saved["epoch"] + 1
        log(f"resuming after epoch {saved['epoch']} from {resume_path}")

    for epoch in range(first_epoch, options.epochs + 1):
        model.train()
        start = time.perf_counter()
        total_loss, n_seen, n_residues = 0.0, 0, 0
        batches = iter_batches(
            train_tokens,
            padding_idx,
            options.max_tokens,
            options.max_batch_size,
            shuffle_seed=options.seed * 1000 + epoch,
        )
        progress = Progress(
            logger, f"fine-tuning epoch {epoch}/{options.epochs}", len(train), "sequences"
        )
        for idx, batch in batches:
            batch = batch.to(device)
            labels = train_labels[idx].to(device)
            loss = F.cross_entropy(model(batch), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            n_residues += int(model.residue_mask(batch).sum())
            progress.update(len(idx))
        progress.done()
        seconds = time.perf_counter() - start

        val_logits = predict_logits(model, val_tokens, device)
        val_loss = float(F.cross_entropy(val_logits, torch.as_tensor(val_labels)))
        metrics = classification_metrics(val_labels, val_logits.argmax(1).numpy(), classes)
        row = {
            "epoch": epoch,
            "train_loss": total_loss / max(1, n_seen),
            "val_loss": val_loss,
            "val_accuracy": metrics["accuracy"],
            "val_macro_f1": metrics["macro_f1"],
            "seconds": seconds,
            "residues_per_second": n_residues / seconds if seconds > 0 else float("nan"),
        }
        history.append(row)
        log(
            f"epoch {epoch}/{options.epochs}: train loss {row['train_loss']:.4f}, "
            f"val loss {val_loss:.4f}, val acc {metrics['accuracy']:.4f}, "
            f"val macro-F1 {metrics['macro_f1']:.4f} ({seconds:.1f} s)"
        )
        key = (metrics["macro_f1"], -val_loss)
        if best_key is None or key > best_key:
            best_key = key
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            best_epoch = epoch
        if resume_path is not None and epoch < options.epochs:
            _save_state(
                resume_path,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "best_state": best_state,
                    "best_key": list(best_key),
                    "best_epoch": best_epoch,
                    "history": history,
                },
            )

    model.load_state_dict(best_state)
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
    history = pd.DataFrame(history)
    history["best"] = history["epoch"] == best_epoch
    return model.eval(), history
