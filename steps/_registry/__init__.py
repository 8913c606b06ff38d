"""The registry page: a model's versions, their gated metrics and lineage as a static HTML folder
(`mlops registry report`, and the register step's `--registry-report-out`)."""
