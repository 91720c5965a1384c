"""study: hyperparameter studies of Keras image classifiers, built on Keras Tuner, from Python or the command line.

    import study
    data = study.load_data("../shared/data/cifar10-jpeg.tar.gz", subset=2000)
    s = study.Study(data, directory="tuner_results", output="reports")
    grid = s.search(tuner="grid", epochs=2)
    rep = s.report(epochs=2, seeds=3)
"""
from study.api import Report, SearchResult, Study, load_data
from study.arrays import from_arrays
from study.config import StudyError

__all__ = ["Report", "SearchResult", "Study", "StudyError", "from_arrays", "load_data"]
