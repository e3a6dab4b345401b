"""What the user sees: the live dashboard and the static report of a run.

``board`` folds the job's output records into chart rows (pure), ``sources`` reads them
from a backtest's files or the job's topics, ``health`` asks Flink's REST API, ``page``
renders the HTML, ``server`` serves it live and ``report`` writes it to a file.
"""
