"""Where a run's images come from: sources (folder, table, fastai URLs, named, embedded digits) -> a scanned
`Dataset` -> the fixed split file and subsample -> fastai DataLoaders (through the pre-resized cache).

Modules: sources, digits, named, scan, images, dataset, split, presize, loaders."""
