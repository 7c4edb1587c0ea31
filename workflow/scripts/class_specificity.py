"""Snakemake adapter: the class-specific targets of one model summarised (`kneurons.classes.stats`,
`kneurons.classes.effects`, `kneurons.classes.report`, `kneurons.classes.figures`): per
evaluated class, per selected class the own-class, off-target, input and output effects against
random units with their calls, the markdown section and one matrix figure per (method, layer
type). Resamples test sequences within classes and, where the
test set has a `cluster` column, by homology cluster; one-sided tests at `alpha`."""

from kneurons.classes.effects import effects_table
from kneurons.classes.figures import plot_class_matrix
from kneurons.classes.rankings import class_names, read_class_evals, shared_units
from kneurons.classes.report import specificity_section
from kneurons.classes.stats import specificity_table
from kneurons.data.split import read_test_strata
from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.selection.ranking import read_selections


def main(snakemake):
    log, _ = start_job(snakemake)
    model = snakemake.wildcards.model
    params = snakemake.params
    classes = class_names(snakemake.input.card)
    y_true, clusters = read_test_strata(snakemake.input.test)
    evals = read_class_evals(snakemake.input.evals)
    rankings = {}
    if snakemake.input.selections:
        selections = read_selections(snakemake.input.selections)
        for (method, layer_type), rows in selections.groupby(["method", "target"]):
            rankings[(method, layer_type)] = rows
    shared = shared_units(rankings, params.retention, params.shared_fraction)
    boot = params.bootstrap
    effects = effects_table(evals, y_true, classes)
    specificity = specificity_table(
        evals,
        y_true,
        classes,
        n_boot=boot["n"],
        seed=boot["seed"],
        level=boot["level"],
        alpha=params.alpha,
        margin=params.margin,
        clusters=clusters,
        shared=shared,
    )
    if specificity.empty:
        log.warning("fewer than two classes have test sequences: no specificity to measure")
    write_parquet(snakemake.output.effects, effects)
    write_parquet(snakemake.output.table, specificity)
    text = specificity_section(specificity, model, level=boot["level"], heading=1)
    atomic_write(snakemake.output.markdown, lambda t: t.write_text(text or "No rows.\n"))
    for (method, layer_type), png in zip(params.figures, snakemake.output.figures, strict=True):
        plot_class_matrix(effects, png, method, layer_type)
    kinds = specificity["effect_kind"].value_counts().to_dict() if len(specificity) else {}
    log.info(
        "%d class-specific evaluations, %d rows; calls %s (alpha %g, margin %g, clusters %s)",
        len(evals), len(specificity), kinds, params.alpha, params.margin, clusters is not None,
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
