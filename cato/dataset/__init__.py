"""Datasets: a corpus extracted through Zeek into the feature table, and the multi-depth matrices a study slices."""

from cato.dataset.extract import ID_COLUMNS, Extraction, extract, extract_to_file, label_vectors, write_table
from cato.dataset.multidepth import Dataset, DatasetError, dataset_key, load_dataset, numeric_features

__all__ = [
    "ID_COLUMNS", "Dataset", "DatasetError", "Extraction", "dataset_key", "extract", "extract_to_file", "label_vectors",
    "load_dataset", "numeric_features", "write_table",
]
