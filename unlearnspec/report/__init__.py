"""Reports people and dashboards read after a run.

`json_report` (build / write / load / merge the run report; its schema in `schema`),
`html` (one self-contained page with SVG plots), `markdown` (model cards, PR comments),
`terminal` (the end-of-session matrix). `collect` and `view` hold what they share.
Nothing here imports torch.
"""
