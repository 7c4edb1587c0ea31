"""Snakemake adapter: how well each SAE of a model stands in for its site, on the test split
(kneurons.sae.fidelity): variance explained, dead latents, active latents per token, and the
classifier's test accuracy with the site replaced by the SAE's reconstruction, by zero, and as it
is. One table and one page per model; an SAE too poor to stand in is flagged there and in the
summary."""

import pandas as pd

from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, architecture_of
from kneurons.model.resources import pass_tokens
from kneurons.sae import load_analysis_model
from kneurons.sae.fidelity import fidelity_markdown, fidelity_table


def main(snakemake):
    log, device = start_job(snakemake)
    saes = list(snakemake.input.saes)
    model, meta, digest = load_analysis_model(snakemake.input.checkpoint, saes, device)
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = pass_tokens(snakemake.params.max_tokens, device, architecture_of(model.encoder))
    table = fidelity_table(
        model, tokens, test["label"].to_numpy(), device, max_tokens, snakemake.params.flag
    )
    table.insert(0, "model", snakemake.wildcards.model)
    flag = snakemake.params.flag
    write_parquet(snakemake.output.table, table, {"model_digest": digest, "flag": flag})
    page = fidelity_markdown(table, snakemake.wildcards.model, snakemake.params.flag, len(test))
    atomic_write(snakemake.output.markdown, lambda tmp: tmp.write_text(page))
    for row in table.itertuples():
        log.info(
            "%s layer %d: variance explained %.3f, dead %.3f, accuracy %.4f (own %.4f, "
            "zero %.4f)%s",
            row.site, row.layer, row.variance_explained, row.dead_fraction,
            row.accuracy_spliced, row.accuracy_own, row.accuracy_zero,
            " POOR" if row.poor else "",
        )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
