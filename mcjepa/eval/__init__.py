"""Evaluation: flow metrics/benchmarks (flow_metrics), linear-probe segmentation (segmentation), DAVIS label
propagation + J&F (davis), k-NN / linear classification on pooled features (knn), paper tables (tables).
Everything takes small callables (flow_fn, feature_fn, pooled_fn), not the model classes."""
