"""Studies: settings, trials and their storage, the run loop and the report."""

from cato.study.study import Study, StudyError, StudySettings, Trial, best_within, load_study, run_study

__all__ = ["Study", "StudyError", "StudySettings", "Trial", "best_within", "load_study", "run_study"]
