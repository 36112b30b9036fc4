"""results/ -> tables, statistics, plots and one self-contained HTML page. Reads only the CSV contract
(docs/SCHEMA.md), never training code."""
