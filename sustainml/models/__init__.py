"""Model building, shared by the model provider (which proposes models) and the hardware node (which
builds and measures them): the catalogue (``catalogue``), building a model from its builder
(``architecture``) or by catalogue name (``zoo``), builders written as data (``builders``) and carried in
a message (``builder_message``), the synthetic workloads measured (``workload``) and ONNX export."""
