# Knowledge neurons of ESM-2 protein language models.
# DAG: data -> finetune -> score_neurons (per layer) -> select_units -> evaluate_masked
#      -> summarize; residue maps and provenance beside it. README.md, "Architecture".

import os
import sys

import yaml

from snakemake.utils import min_version, validate

min_version("9.0")

# The library lives in src/ of this checkout. Jobs (local, cluster, or in a conda environment)
# import it from here (through PYTHONPATH), so a run always uses the code beside its Snakefile.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from kneurons.configuration import coerce_numbers
from kneurons.deps import share_library_path
from kneurons.scheduling import single_reevaluation_timer

share_library_path(os.path.join(workflow.basedir, "src"))
# Snakemake's scheduler loop wakes once more per finished job every second (kneurons.scheduling)
single_reevaluation_timer()


# `--configfile X` replaces the default config instead of being merged into it (a merge would
# add X's models to the default's); `--config` still adjusts whichever config is used
# (nested keys as a block: --config 'data={input: enzymes.tsv}').
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Numbers given as nested `--config` values arrive as strings: read them as the schema says.
with open(os.path.join(workflow.basedir, "config/schema.yaml")) as schema_file:
    config.update(coerce_numbers(config, yaml.safe_load(schema_file)))
validate(config, "config/schema.yaml")


include: "rules/common.smk"


# The report opens on the workflow description and, once a run has written it (rule
# report_front), every model's Findings.
FRONT_PAGE = results("summary/report_front.rst")


report: os.path.abspath(FRONT_PAGE) if os.path.exists(FRONT_PAGE) else "report/workflow.rst"


include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/sae.smk"
include: "rules/scoring.smk"
include: "rules/selection.smk"
include: "rules/evaluation.smk"
include: "rules/summary.smk"
include: "rules/residues.smk"
include: "rules/classes.smk"
include: "rules/profiles.smk"
include: "rules/concepts.smk"
include: "rules/provenance.smk"
include: "rules/store.smk"


rule all:
    default_target: True
    input:
        summary_targets(),
        residue_targets(),
        class_targets(),
        profile_targets(),
        concept_targets(),
        provenance_targets(),
        sae_targets(),
