"""Summary stage: one model's masked evaluations and neuron scores -> tables, statistics,
markdown and HTML pages, and figures. One job per module:

- `tables`: the evaluation-row schema and order (`collect`, `variants`);
- `baseline`: the random band over seeds, bootstrap intervals and p-values (`add_statistics` ->
  `Statistics`), the AUC table;
- `overlap`: which units are selected, from the scores alone: enrichment by layer type and
  layer (`enrichment_tables`), overlap of the classes' top units (`class_overlap`);
- `sections`: the sections of summary.md built on the summary's own tables (cells and pipe
  tables: `kneurons.format`);
- `text`: the markdown pages (`markdown_summary`, `dataset_markdown`, `finetuning_markdown`);
- `html`: markdown -> a standalone HTML page (`markdown_to_html`);
- `plots`: the figures (PNG and SVG);
- `published.yaml`: the reference study's printed figures (`sections.published_figures`).
"""
