"""`tf-prompt report RUN_DIR`: one static HTML page to read a run sentence by sentence.

Numbers (metrics.json) say how good a run is; this page says *why*: every sentence with gold and
predicted entities drawn on the text, the translation and English entities TransFusion went
through, the raw replies, and an entity-level error class (missed, spurious, wrong type, wrong
boundary) plus the pipeline's own troubles (parse failure, hallucinated mention, failed call).

The page is a single file with inline CSS and a little vanilla JS, so it can be mailed, archived
next to the run and opened from file:// with no server and nothing fetched from the network.
Everything taken from the run (sentences, replies, labels, settings) is untrusted text, escaped
by the autoescaped Jinja template; labels become CSS classes only as indices, never by name.

rows.py reads the run folder into one row per sentence (the files through runs/outputs.py, the
entity-level error classes from scoring/errors.py), page.py renders them with report.html.jinja,
report.css and report.js, build.py writes the page, cli.py is the subcommand.
"""

from tf_prompt.experiments.report.build import ReportError, build_report
from tf_prompt.experiments.report.cli import add_report_parser, cmd_report
from tf_prompt.experiments.report.rows import SENTENCE_KINDS, kind_counts
from tf_prompt.scoring.errors import ENTITY_KINDS, ErrorItem, TokenSpan, classify_errors, classify_spans, tag_spans

__all__ = [
           "ENTITY_KINDS",
           "SENTENCE_KINDS",
           "ErrorItem",
           "ReportError",
           "TokenSpan",
           "add_report_parser",
           "build_report",
           "classify_errors",
           "classify_spans",
           "cmd_report",
           "kind_counts",
           "tag_spans",
]
