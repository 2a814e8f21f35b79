"""What a campaign leaves behind: its record files, its results, and the lock on its folder.

One module per job:

- :mod:`~course_utils.records.lock`: one writer per output folder (``.run.lock``);
- :mod:`~course_utils.records.ledger`: the append-only ledger every record file is written
  with (crash-safe rows, fsynced while ``durable``; torn lines cut, bad rows set aside);
- :mod:`~course_utils.records.rows`: the row rules, the one check of every appended row;
- :mod:`~course_utils.records.jsonfiles`: strict JSON (``null``, never ``NaN``), atomic saves;
- :mod:`~course_utils.records.recorder`: simulations.csv, iterations.csv, parameters.json;
- :mod:`~course_utils.records.summary`: results.json's content and best-so-far.

Each record file's schema lives with its owner: lineage.csv in
:mod:`course_utils.campaign.lineage`, checks.csv in :mod:`course_utils.campaign.trust`,
batches.csv in :mod:`course_utils.campaign.batch_plan`. Every public name is exported here
(imported from its module when first used), so ``from course_utils import records as rec`` then
``rec.read_simulations`` works; modules of the package import a name from its own module.
"""

from course_utils import lazy_exports

__all__ = [
    "CampaignRecorder", "CheckedRows", "FolderInUseError", "IE_RANGE_EV", "ITERATIONS",
    "ITERATIONS_FILE", "ITERATION_FIELDS", "LOCK_FILE", "Ledger", "PARAMETERS_FILE", "PLOT_FILE",
    "REJECTED_FIELDS", "REJECTED_SUFFIX", "RESULTS_FILE", "ROW_RULES", "RecordFile",
    "ResumeMismatchError", "RunLock", "SIMULATIONS", "SIMULATIONS_FILE", "SIMULATION_FIELDS",
    "STATUSES", "STATUS_FAILED", "STATUS_LOST", "STATUS_OK", "STATUS_TIMEOUT", "TEMPORARY_DIRS",
    "acquire_run_lock", "add_new_columns", "append_row", "atomic_write_json", "best_so_far",
    "check_rows", "dumps_json", "environment_info", "ie_problem", "is_run_folder",
    "load_json_object", "possible_ie", "read_iterations", "read_json_object", "read_records",
    "read_run_csv", "read_simulations", "register_row_rules", "rejected_files", "rejected_path",
    "remove_stale_temporaries", "repair_tail", "row_problem", "run_parameters", "running_best",
    "set_aside", "strict_json", "summarize", "tidy_records",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "atomic_write_json": "jsonfiles", "dumps_json": "jsonfiles", "load_json_object": "jsonfiles",
    "read_json_object": "jsonfiles", "strict_json": "jsonfiles",
    "LOCK_FILE": "lock", "FolderInUseError": "lock", "RunLock": "lock", "acquire_run_lock": "lock",
    "IE_RANGE_EV": "rows", "ROW_RULES": "rows", "STATUS_FAILED": "rows", "STATUS_LOST": "rows",
    "STATUS_OK": "rows", "STATUS_TIMEOUT": "rows", "STATUSES": "rows", "CheckedRows": "rows",
    "check_rows": "rows", "ie_problem": "rows", "possible_ie": "rows", "register_row_rules": "rows",
    "row_problem": "rows",
    "REJECTED_FIELDS": "ledger", "REJECTED_SUFFIX": "ledger", "Ledger": "ledger",
    "RecordFile": "ledger", "add_new_columns": "ledger", "append_row": "ledger",
    "read_records": "ledger", "read_run_csv": "ledger", "rejected_files": "ledger",
    "rejected_path": "ledger", "repair_tail": "ledger", "set_aside": "ledger",
    "tidy_records": "ledger",
    "ITERATION_FIELDS": "recorder", "ITERATIONS": "recorder", "ITERATIONS_FILE": "recorder",
    "PARAMETERS_FILE": "recorder", "PLOT_FILE": "recorder", "RESULTS_FILE": "recorder",
    "SIMULATION_FIELDS": "recorder", "SIMULATIONS": "recorder", "SIMULATIONS_FILE": "recorder",
    "TEMPORARY_DIRS": "recorder", "CampaignRecorder": "recorder", "ResumeMismatchError": "recorder",
    "is_run_folder": "recorder", "read_iterations": "recorder", "read_simulations": "recorder",
    "remove_stale_temporaries": "recorder", "run_parameters": "recorder",
    "best_so_far": "summary", "environment_info": "summary", "running_best": "summary",
    "summarize": "summary",
})
