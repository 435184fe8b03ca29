"""`tf-prompt sweep sweep.toml`: every model x dataset x method x prompt variant, as one experiment.

A sweep is the paper's comparison (direct vs TransFusion over many languages) made repeatable:

    tf-prompt sweep sweep.toml --dry-run          # cost table, nothing sent
    tf-prompt sweep sweep.toml                    # refuses (exit 2) if the estimate exceeds max_cost
    tf-prompt sweep sweep.toml --proceed-up-to-cap  # run until max_cost is spent, then stop cleanly

Each cell is an ordinary run (`tf_prompt.api.run_async`) with its own folder
`OUT/<model>/<language>/<method>[-<prompt>]/`, so every cell can be inspected, rerun or compared
with `tf-prompt run` output. Cells run one after another (each is concurrent inside): the budget
is then simple to enforce, and a stop leaves whole cells behind.

Resuming: a finished cell leaves `cell.json` with a hash of everything that determines its
replies (settings, template identities, data file contents); a cell whose hash matches and whose
metrics.json says `"complete": true` is skipped. Any other cell is rerun, and the reply cache makes
its already received replies free, so rerunning a finished sweep sends nothing.

Outputs in OUT: results.md (also printed), results.csv, results.json, f1_by_language.png and
cost_vs_f1.png.

The package follows a sweep's course: config.py reads and checks the TOML, plan.py lays out the
cells (folders, fingerprints, the cost table), run.py runs them, results.py tabulates and writes
the results, cli.py is the subcommand.
"""

from tf_prompt.experiments.sweep.cli import add_sweep_parser, cmd_sweep, main_sweep
from tf_prompt.experiments.sweep.config import SweepConfig, SweepError, load_config
from tf_prompt.experiments.sweep.plan import (
           CELL_FILE,
           Cell,
           cell_fingerprint,
           estimate_sweep,
           finished_metrics,
           format_cost_table,
)
from tf_prompt.experiments.sweep.results import CELL_COLUMNS, averages, cell_row, format_results, gains, write_results
from tf_prompt.experiments.sweep.run import EXIT_BUDGET, EXIT_INCOMPLETE, EXIT_REFUSED, run_sweep

__all__ = [
           "CELL_COLUMNS",
           "CELL_FILE",
           "EXIT_BUDGET",
           "EXIT_INCOMPLETE",
           "EXIT_REFUSED",
           "Cell",
           "SweepConfig",
           "SweepError",
           "add_sweep_parser",
           "averages",
           "cell_fingerprint",
           "cell_row",
           "cmd_sweep",
           "estimate_sweep",
           "finished_metrics",
           "format_cost_table",
           "format_results",
           "gains",
           "load_config",
           "main_sweep",
           "run_sweep",
           "write_results",
]
