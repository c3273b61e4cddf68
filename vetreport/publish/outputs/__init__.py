"""Writers of the files of one published version, one module per kind of output.

What belongs here: turning the frames of an ``AggregateResult`` (any number of tables, of
either layout, plus any extra frames) into the bytes a consumer downloads. Nothing here
reads or writes the bucket; ``vetreport.publish.writer`` decides versions, writes the files and
the manifest, and moves the pointer.

- ``metadata``: what each table and column means (Chinese and English names, units,
  decimals, formulas, sources), worked out from schemas/tables.csv and indicators.csv;
- ``tabular``: Parquet and CSV (UTF-8 with BOM; formula-like text neutralised);
- ``workbook``: the Excel workbook laid out like the report's appendix;
- ``database``: the DuckDB database of every table;
- ``dictionary``: the data dictionary as Markdown and JSON;
- ``changelog``: cells and submissions that changed against the previous version;
- ``charts`` and ``html_report``: the static HTML report with inline SVG charts.
"""
