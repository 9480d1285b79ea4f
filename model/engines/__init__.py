"""Serving engines, one module per engine (vllm, sglang, trtllm): the single source of truth for what each engine
does (scheduling defaults, layout rules) and how it is launched (its "launch flags" section). model.engines.launch
holds what the launch sections share (a flag table's types, a command parser built from a table)."""
